//! `eval-cli dataset excerpts`: fixed-length excerpts cut from every track of a dataset, so
//! that accuracy can be read against how many seconds of audio the analyzer was given.
//!
//! Each source track is decoded once (mono, at its own sample rate) and cut at a few
//! offsets spread over it, skipping the intro and outro, where tempo is least typical, when
//! the track is long enough. Every excerpt is a 16-bit PCM mono WAV, listed in a
//! `manifest.csv` whose `seconds` column gives `evaluate` its breakdown by length, and
//! which keeps every metadata column of the source (so groupings such as `source` work on
//! the excerpts as on the tracks) and, when the source has key truth, its `key`.
//! Everything is a function of the input: the same dataset and flags give the same bytes.
//!
//! Ctrl-C or SIGTERM stops the cut between two excerpts (exit 130), each excerpt written
//! whole. The manifest comes last and says the set is complete, so a stopped run leaves
//! none (an earlier set's is removed before the first excerpt is rewritten); what marks the
//! folder as ours for the next run is [`MARKER`], written before any excerpt.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Cursor, Write};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use analyzer_core::StopSignal;
use anyhow::{Context, bail};

use super::{remove_leftovers, temporary_for};
use crate::evaluation::{SynthArgs, create_out_dir};
use crate::manifest::{self, Dataset, Item};
use crate::report;
use crate::runner;
use crate::stdout;

/// Share of a track skipped at each end (intro and outro), when what is left still holds
/// the excerpt.
const EDGE_FRACTION: f64 = 0.1;

/// A track must be at least this many seconds longer than an excerpt to yield it: an
/// "excerpt" that is the whole track would measure the track, not the length.
const MIN_SPARE_S: f64 = 1.0;

/// The most excerpts cut per track and length (`--offsets`): the offsets are planned whole
/// before any is cut, so a count near `usize::MAX` panicked ("capacity overflow"), and a
/// million cut a six-second track a million times over before writing its manifest.
const MAX_OFFSETS: usize = 1000;

/// The manifest the excerpts are listed in, inside the output folder.
pub const MANIFEST_FILE: &str = "manifest.csv";

/// The manifest's own columns, before the source's metadata (and `key`, when the source
/// has key truth, between them).
const OWN_COLUMNS: [&str; 5] = ["file", "bpm", "seconds", "offset_s", "source_file"];

/// The key truth column, written when the source has one.
const KEY_COLUMN: &str = "key";

/// The file that marks a folder as an excerpt set, written before the first excerpt: a run
/// stopped before its manifest (a signal, a full disk, SIGKILL) leaves excerpts that no
/// manifest lists, and the marker is what lets the next run take the folder back. As
/// `evaluate --out-dir` does with `.eval-cli-report`; a marker alone does not make every
/// file ours, only the names an excerpt set writes ([`is_excerpt_name`]).
pub const MARKER: &str = ".eval-cli-excerpts";

/// What the marker says to whoever opens it.
const MARKER_TEXT: &str = "This folder holds excerpts cut by `eval-cli dataset excerpts`; it \
writes here again, replacing its own files.\n";

/// Flags of `eval-cli dataset excerpts`.
#[derive(Debug, clap::Args)]
pub struct ExcerptArgs {
    /// The dataset to cut from: anything `--dataset` accepts (a manifest CSV, a folder, or
    /// `synth`).
    #[arg(long)]
    pub from: String,
    /// Excerpt lengths in seconds (1 to 3600 each), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "8,10,15,30",
          value_parser = crate::flags::parse_audio_length)]
    pub seconds: Vec<f64>,
    /// Excerpts per track and length, spread over the track.
    #[arg(long, default_value_t = 3)]
    pub offsets: usize,
    /// Folder to write the excerpts and manifest.csv into (created if missing; files of
    /// the same names are replaced).
    #[arg(long)]
    pub out: PathBuf,
    /// The size of the synthetic set, for `--from synth`.
    #[command(flatten)]
    pub synth: SynthArgs,
}

/// Where the excerpts of a `duration_s`-second track start, in seconds: `count` offsets
/// spread evenly (each in the middle of its share) over the track less a 10 % intro and
/// outro, or over the whole track when that leaves too little. Empty when the track is
/// shorter than `length_s` plus [`MIN_SPARE_S`].
pub fn excerpt_offsets(duration_s: f64, length_s: f64, count: usize) -> Vec<f64> {
    if duration_s.is_nan() || duration_s < length_s + MIN_SPARE_S {
        return Vec::new();
    }
    let edge = EDGE_FRACTION * duration_s;
    let usable = duration_s - 2.0 * edge;
    let (start, span) = if usable >= length_s {
        (edge, usable - length_s)
    } else {
        (0.0, duration_s - length_s)
    };
    (0..count)
        .map(|k| start + span * (k as f64 + 0.5) / count as f64)
        .collect()
}

/// A length as it appears in file names and in the `seconds` column: `10`, `7.5`.
fn seconds_label(length_s: f64) -> String {
    format!("{length_s}")
}

/// The file an excerpt goes to, relative to the output folder: `DIR/STEM__10s_o1.wav`.
fn excerpt_file(stem: &Path, length_s: f64, k: usize) -> PathBuf {
    let name = stem.file_name().unwrap_or_default().to_string_lossy();
    stem.with_file_name(format!("{name}__{}s_o{k}.wav", seconds_label(length_s)))
}

/// Whether a file name is one [`excerpt_file`] gives: `STEM__LENGTHs_oK.wav`, with a
/// positive length and a whole `K`.
fn is_excerpt_name(name: &str) -> bool {
    let Some((stem, cut)) = name
        .strip_suffix(".wav")
        .and_then(|base| base.rsplit_once("__"))
    else {
        return false;
    };
    let Some((length, k)) = cut.split_once("s_o") else {
        return false;
    };
    let length_ok = length
        .parse::<f64>()
        .is_ok_and(|s| s.is_finite() && s > 0.0 && seconds_label(s) == length);
    let k_ok = k.parse::<usize>().is_ok_and(|n| n.to_string() == k);
    !stem.is_empty() && length_ok && k_ok
}

/// The output stem of every item: its path in the dataset without the extension, with only
/// plain components (no `..`, no root), so excerpts mirror the dataset's folders and never
/// land outside the output folder. Stems that would clash (`a.wav` beside `a.flac`) get
/// the item's index in the dataset appended.
fn output_stems(items: &[Item]) -> Vec<PathBuf> {
    let plain: Vec<PathBuf> = items
        .iter()
        .map(|item| {
            let path: PathBuf = Path::new(&item.file)
                .components()
                .filter_map(|c| match c {
                    Component::Normal(part) => Some(part),
                    _ => None,
                })
                .collect();
            path.with_extension("")
        })
        .collect();
    let mut uses: BTreeMap<&Path, usize> = BTreeMap::new();
    for stem in &plain {
        *uses.entry(stem.as_path()).or_default() += 1;
    }
    plain
        .iter()
        .enumerate()
        .map(|(i, stem)| {
            if uses[stem.as_path()] > 1 {
                let name = stem.file_name().unwrap_or_default().to_string_lossy();
                stem.with_file_name(format!("{name}_{i}"))
            } else {
                stem.clone()
            }
        })
        .collect()
}

/// The source's metadata columns as the excerpt manifest names them: unchanged, except
/// that a name the manifest uses itself (a synthetic set's own `seconds`, say) gets a
/// `source_` prefix, so both survive.
fn source_columns(meta_columns: &[String]) -> Vec<String> {
    let mut taken: BTreeSet<String> = OWN_COLUMNS.iter().map(|c| c.to_string()).collect();
    meta_columns
        .iter()
        .map(|column| {
            let mut name = column.clone();
            while taken.contains(&name) {
                name = format!("source_{name}");
            }
            taken.insert(name.clone());
            name
        })
        .collect()
}

/// A whole track, decoded to mono.
struct Track {
    samples: Vec<f32>,
    sample_rate: u32,
}

/// Decodes `path` to mono at its own sample rate, unless `stop` says to stop first.
fn decode(path: &Path, stop: &StopSignal) -> Result<Track, String> {
    let mut samples = Vec::new();
    let info = analyzer_core::decode::decode_mono(path, stop, |mono, _| {
        samples.extend_from_slice(mono);
        Ok(())
    })
    .map_err(|e| e.reason())?;
    if info.sample_rate == 0 {
        return Err("decode: the stream has no sample rate".into());
    }
    Ok(Track {
        samples,
        sample_rate: info.sample_rate,
    })
}

/// `samples` as a 16-bit PCM mono WAV file (clipped to full scale, rounded to nearest).
fn wav_bytes(samples: &[f32], sample_rate: u32) -> anyhow::Result<Vec<u8>> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut bytes = Cursor::new(Vec::new());
    let mut writer = hound::WavWriter::new(&mut bytes, spec)?;
    for &s in samples {
        writer.write_sample((s.clamp(-1.0, 1.0) * f32::from(i16::MAX)).round() as i16)?;
    }
    writer.finalize()?;
    Ok(bytes.into_inner())
}

/// What one length came to over the whole dataset.
#[derive(Debug, Default)]
struct LengthTally {
    excerpts: usize,
    too_short: usize,
}

/// What every track is cut into, and where the cuts go.
struct Cutter<'a> {
    /// The output folder.
    out: &'a Path,
    /// Excerpt lengths, seconds, ascending.
    lengths: &'a [f64],
    /// Excerpts per track and length.
    offsets: usize,
    /// The source's metadata columns, in manifest order.
    meta: &'a [String],
    /// Whether the source has key truth, to be written in a `key` column.
    with_key: bool,
    /// Set by Ctrl-C or SIGTERM: no further excerpt is cut.
    cancel: &'a AtomicBool,
}

impl Cutter<'_> {
    /// Cuts, writes and lists the excerpts of one decoded track; returns its manifest
    /// rows, fewer when [`Cutter::cancel`] is set midway. `tallies` is in the order of the
    /// lengths.
    fn cut(
        &self,
        item: &Item,
        stem: &Path,
        track: &Track,
        tallies: &mut [LengthTally],
    ) -> anyhow::Result<Vec<Vec<String>>> {
        let rate = f64::from(track.sample_rate);
        let total = track.samples.len();
        let mut rows = Vec::new();
        for (&length_s, tally) in self.lengths.iter().zip(tallies.iter_mut()) {
            let starts = excerpt_offsets(total as f64 / rate, length_s, self.offsets);
            if starts.is_empty() {
                tally.too_short += 1;
                continue;
            }
            let frames = ((length_s * rate).round() as usize).min(total);
            for (k, offset_s) in starts.into_iter().enumerate() {
                if self.cancel.load(Ordering::SeqCst) {
                    return Ok(rows);
                }
                let start = ((offset_s * rate).round() as usize).min(total - frames);
                let file = excerpt_file(stem, length_s, k);
                let path = self.out.join(&file);
                if let Some(parent) = path.parent() {
                    create_out_dir(parent)?;
                }
                let wav = wav_bytes(&track.samples[start..start + frames], track.sample_rate)?;
                report::write_file(&path, &wav)?;
                tally.excerpts += 1;
                let mut row = vec![
                    file.to_string_lossy().replace('\\', "/"),
                    item.bpm.map_or(String::new(), |b| b.to_string()),
                    seconds_label(length_s),
                    format!("{:.3}", start as f64 / rate),
                    item.file.clone(),
                ];
                if self.with_key {
                    row.push(item.key.map_or(String::new(), |k| k.to_string()));
                }
                row.extend(
                    self.meta
                        .iter()
                        .map(|c| item.meta.get(c).cloned().unwrap_or_default()),
                );
                rows.push(row);
            }
        }
        Ok(rows)
    }
}

/// The lengths asked for, checked, in ascending order without repeats.
fn checked_lengths(seconds: &[f64]) -> anyhow::Result<Vec<f64>> {
    if let Some(bad) = seconds.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        bail!("--seconds: {bad} is not a positive number of seconds");
    }
    let mut lengths = seconds.to_vec();
    lengths.sort_by(f64::total_cmp);
    lengths.dedup();
    if lengths.is_empty() {
        bail!("--seconds: no length given");
    }
    Ok(lengths)
}

/// The manifest CSV of the excerpts: header, then `rows` as given.
fn manifest_csv(
    source_meta: &[String],
    with_key: bool,
    rows: &[Vec<String>],
) -> anyhow::Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let header: Vec<String> = OWN_COLUMNS
        .iter()
        .chain(with_key.then_some(&KEY_COLUMN))
        .map(|c| c.to_string())
        .chain(source_columns(source_meta))
        .collect();
    writer.write_record(&header)?;
    for row in rows {
        writer.write_record(row)?;
    }
    writer
        .into_inner()
        .context("cannot flush the excerpt manifest")
}

/// Prints what was written, one line per length, naming the lengths no track was long
/// enough for.
fn write_summary(
    lines: &mut dyn Write,
    out: &Path,
    ds: &Dataset,
    lengths: &[f64],
    tallies: &[LengthTally],
    failed: usize,
) -> io::Result<()> {
    let excerpts: usize = tallies.iter().map(|t| t.excerpts).sum();
    writeln!(
        lines,
        "wrote {excerpts} excerpts from {} of {} tracks, listed in {}",
        ds.items.len() - failed,
        ds.items.len(),
        out.join(MANIFEST_FILE).display()
    )?;
    for (length_s, t) in lengths.iter().zip(tallies) {
        let mut line = format!("  {} s: {} excerpts", seconds_label(*length_s), t.excerpts);
        if t.too_short > 0 {
            line.push_str(&format!(
                "; {} tracks shorter than {} s yield none",
                t.too_short,
                seconds_label(length_s + MIN_SPARE_S)
            ));
        }
        writeln!(lines, "{line}")?;
    }
    Ok(())
}

/// Refuses an `--out` folder that holds anything but an earlier excerpt set: its
/// manifest (with this command's own columns first) and the files that manifest lists, or,
/// in a folder with the [`MARKER`] of a run that stopped before its manifest, files named
/// as excerpts are named. Cutting replaces files of those names, and a folder of the
/// user's own (a music folder, the source dataset itself, notes named like excerpts) must
/// never lose one. Returns the temporaries of such files that a run ended at once (a
/// second Ctrl-C, SIGKILL) left: ours, to be removed, not foreign files. A file in the
/// folder that `reads` says this run reads (the `--from` manifest, a source track, however
/// reached) is refused too, naming it: the run removes the manifest and replaces or
/// removes files of excerpt names, and never one it reads.
fn check_excerpt_folder(out: &Path, reads: &dyn Fn(&Path) -> bool) -> anyhow::Result<EarlierSet> {
    let mut earlier = EarlierSet::default();
    if !out.exists() {
        return Ok(earlier);
    }
    let refuse = |what: &Path| {
        anyhow::anyhow!(
            "{} holds {}, which is not part of an earlier excerpt set: give an empty or new \
             folder (nothing in it is replaced)",
            out.display(),
            what.display()
        )
    };
    // Only a regular file marks the folder: a link of that name is not ours.
    let marked = fs::symlink_metadata(out.join(MARKER)).is_ok_and(|m| m.file_type().is_file());
    let manifest = out.join(MANIFEST_FILE);
    let mut listed = BTreeSet::new();
    if manifest.exists() {
        let mut reader = csv::Reader::from_path(&manifest)
            .with_context(|| format!("cannot read {}", manifest.display()))?;
        let ours = reader
            .headers()
            .is_ok_and(|h| h.iter().take(OWN_COLUMNS.len()).eq(OWN_COLUMNS));
        if !ours {
            return Err(refuse(Path::new(MANIFEST_FILE)));
        }
        for record in reader.records() {
            let record = record.map_err(|_| refuse(Path::new(MANIFEST_FILE)))?;
            listed.insert(PathBuf::from(&record[0]));
        }
        listed.insert(PathBuf::from(MANIFEST_FILE));
    }
    let has_manifest = !listed.is_empty();
    let excerpt_named = |relative: &Path| {
        relative
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(is_excerpt_name)
    };
    // With a manifest, the set is what it lists: an excerpt-named file it does not list is
    // not ours (a run removes the manifest before it cuts). Without one, the marker of a run
    // stopped midway claims the names excerpts have.
    let ours = |relative: &Path| {
        listed.contains(relative)
            || (marked
                && (relative == Path::new(MARKER)
                    || (!has_manifest
                        && (relative == Path::new(MANIFEST_FILE) || excerpt_named(relative)))))
    };
    for entry in walkdir::WalkDir::new(out).min_depth(1) {
        let entry = entry.with_context(|| format!("cannot read {}", out.display()))?;
        if entry.file_type().is_dir() {
            continue;
        }
        if reads(entry.path()) {
            bail!(
                "refusing to cut excerpts into {}: {}: it is one of this run's input files \
                 (give another --out; nothing was written)",
                out.display(),
                entry.path().display()
            );
        }
        let relative = entry.path().strip_prefix(out).unwrap_or(entry.path());
        let temporary_of = relative
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(temporary_for)
            .map(|name| relative.with_file_name(name));
        // Only a regular file is ours: a link of an excerpt's name would have the cut
        // written through it, over a file anywhere (the walk does not follow links).
        let regular = entry.file_type().is_file();
        if temporary_of.is_some_and(|of| regular && ours(&of)) {
            earlier.leftovers.push(entry.path().to_path_buf());
        } else if !(regular && ours(relative)) {
            return Err(refuse(relative));
        } else if excerpt_named(relative) {
            earlier.excerpts.push(relative.to_path_buf());
        }
    }
    Ok(earlier)
}

/// What [`check_excerpt_folder`] found of an earlier set in `--out`.
#[derive(Debug, Default)]
struct EarlierSet {
    /// The temporaries of a run ended at once, to be removed.
    leftovers: Vec<PathBuf>,
    /// Its excerpts (regular files it listed, or that a stopped run's marker claims),
    /// relative to the folder: those this run does not write again are removed.
    excerpts: Vec<PathBuf>,
}

/// Removes the earlier set's excerpts (`earlier`, relative to `out`, as
/// [`check_excerpt_folder`] found them) that this run's (`listed`) do not hold: other
/// lengths or offsets, or the excerpts of a track that no longer decodes, which no manifest
/// would list. Returns how many went.
fn remove_unlisted_excerpts(
    out: &Path,
    earlier: &[PathBuf],
    listed: &BTreeSet<PathBuf>,
) -> anyhow::Result<usize> {
    let mut removed = 0;
    for relative in earlier.iter().filter(|e| !listed.contains(*e)) {
        let path = out.join(relative);
        match fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
        }
    }
    Ok(removed)
}

/// Marks `out` as an excerpt set ([`MARKER`]) unless it is already, and removes an earlier
/// set's manifest: from here until the new one is written the folder is a set being cut.
fn claim_excerpt_folder(out: &Path) -> anyhow::Result<()> {
    create_out_dir(out)?;
    let marker = out.join(MARKER);
    let created = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&marker)
        .and_then(|mut file| file.write_all(MARKER_TEXT.as_bytes()));
    match created {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            return Err(e).with_context(|| format!("cannot write {}", marker.display()));
        }
        _ => {}
    }
    let manifest = out.join(MANIFEST_FILE);
    match fs::remove_file(&manifest) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", manifest.display()))
        }
        _ => Ok(()),
    }
}

/// Runs `eval-cli dataset excerpts`: exit 0, or 1 when some source did not decode (it is
/// named on stderr and skipped; the rest are still cut).
pub fn run(args: ExcerptArgs) -> anyhow::Result<ExitCode> {
    let lengths = checked_lengths(&args.seconds)?;
    if args.offsets == 0 {
        bail!("--offsets must be at least 1");
    }
    if args.offsets > MAX_OFFSETS {
        bail!(
            "--offsets {} is more than the {MAX_OFFSETS} excerpts per track and length this cuts",
            args.offsets
        );
    }
    let ds = manifest::load(&args.from, args.synth.params())?;
    // An excerpt or manifest written into the source folder never replaces a source file.
    crate::output::protect(&crate::output::Inputs::of(ds.files()));
    let earlier = check_excerpt_folder(&args.out, &report::folder::read_by_this_run)?;
    remove_leftovers(&earlier.leftovers)?;
    // Put back when this run cuts nothing (the claim removes it).
    let earlier_manifest = fs::read(args.out.join(MANIFEST_FILE)).ok();
    claim_excerpt_folder(&args.out)?;
    let cancel = Arc::new(AtomicBool::new(false));
    runner::install_signal_handler(Arc::clone(&cancel));
    let stop = StopSignal::never().with_cancel_flag(Arc::clone(&cancel));
    let stems = output_stems(&ds.items);
    let mut tallies: Vec<LengthTally> = lengths.iter().map(|_| LengthTally::default()).collect();
    let mut rows = Vec::new();
    let mut failed = 0;
    let cutter = Cutter {
        out: &args.out,
        lengths: &lengths,
        offsets: args.offsets,
        meta: &ds.meta_columns,
        with_key: ds.has_key_truth(),
        cancel: &cancel,
    };
    for (i, (item, stem)) in ds.items.iter().zip(&stems).enumerate() {
        if cancel.load(Ordering::SeqCst) {
            break;
        }
        eprintln!(
            "excerpts: track {}/{}, {}",
            i + 1,
            ds.items.len(),
            item.file
        );
        let track = match decode(&item.path, &stop) {
            Ok(track) => track,
            Err(_) if cancel.load(Ordering::SeqCst) => break,
            Err(reason) => {
                eprintln!(
                    "eval-cli: error: cannot decode {} ({}): {reason}; skipped",
                    item.file,
                    item.path.display()
                );
                failed += 1;
                continue;
            }
        };
        rows.extend(cutter.cut(item, stem, &track, &mut tallies)?);
    }
    if cancel.load(Ordering::SeqCst) {
        eprintln!(
            "eval-cli: cancelled: {} excerpts cut into {}, and no {MANIFEST_FILE}; run the \
             same command again for the whole set",
            rows.len(),
            args.out.display()
        );
        return Ok(ExitCode::from(runner::EXIT_CANCELLED));
    }
    if rows.is_empty() {
        // A manifest of no file is one every command refuses: say why, write none, and
        // leave an earlier set as it was.
        let why = if failed == ds.items.len() {
            "no track decoded".to_string()
        } else {
            let shortest = lengths.iter().copied().fold(f64::INFINITY, f64::min);
            format!(
                "every track is too short (an excerpt needs a track {} s longer: {} s for \
                 the shortest length asked)",
                seconds_label(MIN_SPARE_S),
                seconds_label(shortest + MIN_SPARE_S)
            )
        };
        let kept = match earlier_manifest {
            Some(bytes) => {
                report::write_file(&args.out.join(MANIFEST_FILE), &bytes)?;
                "the earlier set is kept as it was"
            }
            None => "no manifest was written",
        };
        eprintln!(
            "eval-cli: no excerpt was cut into {}: {why}; {kept}",
            args.out.display()
        );
        return Ok(ExitCode::from(1));
    }
    let listed: BTreeSet<PathBuf> = rows.iter().map(|row| PathBuf::from(&row[0])).collect();
    let stale = remove_unlisted_excerpts(&args.out, &earlier.excerpts, &listed)?;
    if stale > 0 {
        eprintln!(
            "excerpts: removed {stale} excerpt{} of an earlier set that this one does not list",
            if stale == 1 { "" } else { "s" }
        );
    }
    report::write_file(
        &args.out.join(MANIFEST_FILE),
        &manifest_csv(&ds.meta_columns, cutter.with_key, &rows)?,
    )?;
    let printed = stdout::print("cannot write the summary to stdout", |lines| {
        write_summary(lines, &args.out, &ds, &lengths, &tallies, failed)
    });
    stdout::keep_status(
        printed,
        if failed > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_skip_intro_and_outro() {
        // 30 s track, 10 s excerpts: usable 3..27 s, starts spread over 3..17 s.
        let got = excerpt_offsets(30.0, 10.0, 2);
        assert_eq!(got.len(), 2);
        assert!(
            (got[0] - 6.5).abs() < 1e-9 && (got[1] - 13.5).abs() < 1e-9,
            "{got:?}"
        );
        // Every excerpt lies inside the usable part.
        for n in 1..6 {
            for o in excerpt_offsets(30.0, 10.0, n) {
                assert!((3.0..=17.0).contains(&o), "{o}");
            }
        }
    }

    #[test]
    fn offsets_of_short_tracks() {
        // 12 s track, 10 s excerpt: the usable 9.6 s is too little, so the whole track.
        let got = excerpt_offsets(12.0, 10.0, 1);
        assert_eq!(got, [1.0]);
        // Shorter than the excerpt plus a second: none.
        assert!(excerpt_offsets(10.9, 10.0, 3).is_empty());
        assert!(excerpt_offsets(f64::NAN, 10.0, 3).is_empty());
        assert_eq!(excerpt_offsets(11.0, 10.0, 3).len(), 3);
    }

    fn item(file: &str) -> Item {
        Item {
            file: file.into(),
            path: PathBuf::from(file),
            bpm: Some(120.0),
            key: None,
            meta: BTreeMap::new(),
        }
    }

    #[test]
    fn stems_mirror_folders_and_never_clash() {
        let items = [
            item("audio/a.wav"),
            item("audio/a.flac"),
            item("../up/b.mp3"),
            item("c.ogg"),
        ];
        let stems = output_stems(&items);
        assert_eq!(
            stems,
            ["audio/a_0", "audio/a_1", "up/b", "c"].map(PathBuf::from)
        );
        assert_eq!(
            excerpt_file(&stems[3], 7.5, 2),
            PathBuf::from("c__7.5s_o2.wav")
        );
        assert_eq!(
            excerpt_file(&stems[2], 10.0, 0),
            PathBuf::from("up/b__10s_o0.wav")
        );
    }

    #[test]
    fn clashing_source_columns_are_prefixed() {
        let cols: Vec<String> = ["style", "seconds", "source_seconds", "source_file"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            source_columns(&cols),
            [
                "style",
                "source_seconds",
                "source_source_seconds",
                "source_source_file"
            ]
        );
    }

    #[test]
    fn excerpt_names_are_known_by_their_shape() {
        for ours in ["a__8s_o0.wav", "x__y__7.5s_o12.wav", "c__10s_o999.wav"] {
            assert!(is_excerpt_name(ours), "{ours}");
        }
        for theirs in [
            "a__8s_o0.flac",
            "__8s_o0.wav",
            "a__08s_o0.wav",
            "a__8s_o01.wav",
            "a__0s_o0.wav",
            "a__-1s_o0.wav",
            "a__NaNs_o0.wav",
            "a__8s_o.wav",
            "a_8s_o0.wav",
        ] {
            assert!(!is_excerpt_name(theirs), "{theirs}");
        }
    }

    /// A run stopped before its manifest left excerpts that no manifest lists, and maybe
    /// temporaries: the next run refused the folder for them. Its marker makes them ours;
    /// without it, or for any other name, the folder is still the user's.
    #[test]
    fn a_marked_folder_of_a_stopped_run_is_taken_back() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        fs::create_dir(out.join("sub")).unwrap();
        fs::write(out.join("a__8s_o0.wav"), "x").unwrap();
        fs::write(out.join("sub/b__7.5s_o12.wav"), "x").unwrap();
        let refused = check_excerpt_folder(out, &|_| false)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("a__8s_o0.wav"), "{refused}");
        assert!(
            !out.join(MARKER).exists(),
            "nothing is written on a refusal"
        );

        fs::write(out.join(MARKER), MARKER_TEXT).unwrap();
        let excerpt_tmp = out.join("sub/.b__7.5s_o12.wav.Xy12Ab.tmp");
        let manifest_tmp = out.join(".manifest.csv.Q1w2E3.tmp");
        for path in [&excerpt_tmp, &manifest_tmp] {
            fs::write(path, "half").unwrap();
        }
        let mut found = check_excerpt_folder(out, &|_| false).unwrap().leftovers;
        found.sort();
        assert_eq!(found, [manifest_tmp, excerpt_tmp]);
        for theirs in [
            "notes.txt",
            "a__8s.wav",
            ".notes.wav.123.tmp",
            "sub/.b.wav.1.tmp",
        ] {
            fs::write(out.join(theirs), "mine").unwrap();
            let refused = check_excerpt_folder(out, &|_| false)
                .unwrap_err()
                .to_string();
            assert!(refused.contains(theirs), "{theirs}: {refused}");
            fs::remove_file(out.join(theirs)).unwrap();
        }
    }

    /// A link named like an excerpt is never ours, listed or not: the cut was written
    /// through it, over the user's file it led to. With a manifest, an excerpt-named file
    /// it does not list is not ours either: a rerun removed it as an earlier excerpt.
    #[cfg(unix)]
    #[test]
    fn links_and_unlisted_names_beside_a_manifest_are_not_ours() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("ex");
        fs::create_dir_all(out.join("sub")).unwrap();
        fs::write(out.join(MARKER), MARKER_TEXT).unwrap();
        let precious = dir.path().join("keep.wav");
        fs::write(&precious, "mine").unwrap();
        std::os::unix::fs::symlink(&precious, out.join("t1__4s_o0.wav")).unwrap();
        let refused = check_excerpt_folder(&out, &|_| false)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("t1__4s_o0.wav"), "{refused}");
        fs::write(
            out.join(MANIFEST_FILE),
            "file,bpm,seconds,offset_s,source_file\nt1__4s_o0.wav,120,4,1.000,t1.wav\n",
        )
        .unwrap();
        let refused = check_excerpt_folder(&out, &|_| false)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("t1__4s_o0.wav"), "{refused}");
        fs::remove_file(out.join("t1__4s_o0.wav")).unwrap();
        fs::write(out.join("t1__4s_o0.wav"), "an excerpt").unwrap();
        assert_eq!(
            check_excerpt_folder(&out, &|_| false).unwrap().excerpts,
            [PathBuf::from("t1__4s_o0.wav")]
        );
        fs::write(out.join("sub/t1__4s_o0.wav"), "mine").unwrap();
        let refused = check_excerpt_folder(&out, &|_| false)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("sub/t1__4s_o0.wav"), "{refused}");
        assert_eq!(fs::read_to_string(&precious).unwrap(), "mine");
    }

    #[cfg(unix)]
    #[test]
    fn a_marker_is_a_file_of_ours_never_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("ex");
        fs::create_dir(&out).unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::os::unix::fs::symlink(&elsewhere, out.join(MARKER)).unwrap();
        let refused = check_excerpt_folder(&out, &|_| false)
            .unwrap_err()
            .to_string();
        assert!(refused.contains(MARKER), "{refused}");
        claim_excerpt_folder(&out).unwrap();
        assert!(!elsewhere.exists(), "the link was followed");
    }

    /// The marker is written once; an earlier set's manifest goes, so that a run stopped
    /// midway never leaves one listing excerpts it has replaced.
    #[test]
    fn claiming_marks_the_folder_and_drops_the_old_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("new/ex");
        claim_excerpt_folder(&out).unwrap();
        assert_eq!(fs::read_to_string(out.join(MARKER)).unwrap(), MARKER_TEXT);
        fs::write(
            out.join(MANIFEST_FILE),
            "file,bpm,seconds,offset_s,source_file\n",
        )
        .unwrap();
        assert_eq!(
            check_excerpt_folder(&out, &|_| false).unwrap().leftovers,
            Vec::<PathBuf>::new()
        );
        claim_excerpt_folder(&out).unwrap();
        assert!(!out.join(MANIFEST_FILE).exists());
        assert!(out.join(MARKER).is_file());
    }

    #[test]
    fn lengths_are_sorted_and_checked() {
        assert_eq!(
            checked_lengths(&[30.0, 8.0, 10.0, 8.0]).unwrap(),
            [8.0, 10.0, 30.0]
        );
        assert!(checked_lengths(&[10.0, 0.0]).is_err());
        assert!(checked_lengths(&[f64::NAN]).is_err());
        assert!(checked_lengths(&[]).is_err());
    }

    /// An earlier set given as `--from` and as `--out` is refused before its manifest is
    /// removed: the run reads it.
    #[test]
    fn a_folder_holding_a_file_the_run_reads_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("ex");
        claim_excerpt_folder(&out).unwrap();
        let manifest = out.join(MANIFEST_FILE);
        fs::write(&manifest, "file,bpm,seconds,offset_s,source_file\n").unwrap();
        let inputs = crate::output::Inputs::of([&manifest]);
        let reads = |path: &Path| {
            crate::output::Destination::check(path, &inputs).is_err_and(|e| {
                matches!(
                    e,
                    crate::output::OutputError::Refused {
                        reason: crate::output::Refusal::Input,
                        ..
                    }
                )
            })
        };
        let refused = check_excerpt_folder(&out, &reads).unwrap_err().to_string();
        assert!(
            refused.contains("manifest.csv: it is one of this run's input files"),
            "{refused}"
        );
        assert!(manifest.is_file());
    }
}
