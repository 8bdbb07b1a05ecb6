//! Writing what was measured into an audio file's own tags, where DJ software and players
//! look: ID3v2 `TBPM`/`TKEY` (MP3, WAV, AIFF), Vorbis comments `BPM`/`INITIALKEY` (FLAC,
//! Ogg Vorbis, Opus), MP4 `tmpo` and `----:com.apple.iTunes:initialkey`, and the
//! ReplayGain fields in each. The tags are read and written by lofty ([`formats`]); the
//! file is replaced by a tagged copy, never edited in place ([`replace`]).
//!
//! [`tag_file`] decides per field: a value already there is kept unless `overwrite`; a
//! field that already holds the new value is left alone; a file with nothing to change is
//! not rewritten. With `dry_run` it only says what would change. A file it cannot tag
//! safely is an error naming why, and nothing of it is touched.

pub mod formats;
pub mod guard;
pub mod notation;
pub mod replace;

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::Seek;
use std::path::Path;

use analyzer_core::Analysis;
use analyzer_core::key::Key;

use formats::{Field, FormatTag, LoadError};
pub use notation::KeyNotation;
use replace::{ReplaceError, Replaceable};

use crate::cache::FileIdentity;

use crate::record::AnalyzeRecord;

/// What a file is tagged with; a value left `None` is not written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TagValues {
    /// The tempo, BPM.
    pub bpm: Option<f64>,
    /// The key.
    pub key: Option<Key>,
    /// The ReplayGain 2.0 values (reference -18 LUFS).
    pub replaygain: Option<ReplayGain>,
}

impl TagValues {
    /// The tempo and the key of `analysis`, each when one was found.
    pub fn of(analysis: &Analysis) -> Self {
        TagValues {
            bpm: analysis.tempo.as_ref().ok().map(|t| t.bpm),
            key: match &analysis.key {
                Some(Ok(estimate)) => Some(estimate.key),
                _ => None,
            },
            // The track's own gain and peak; album fields come only from a run that
            // measured the album (`analyze --album`), which `tag` does not do.
            replaygain: analysis.loudness.as_ref().and_then(|l| {
                Some(ReplayGain {
                    track_gain_db: l.track_gain_db()?,
                    track_peak: l.true_peak,
                    album_gain_db: None,
                    album_peak: None,
                })
            }),
        }
    }

    /// The values of a row as `analyze` writes it (a cached row included): its tempo, its
    /// key and its ReplayGain cells, each where the row has it. A failed row has none,
    /// but one without a pulse keeps its key and ReplayGain. `None` when there is nothing.
    pub fn of_record(record: &AnalyzeRecord) -> Option<Self> {
        let number = |cell: &str| cell.parse::<f64>().ok();
        let replaygain = number(&record.replaygain_track_gain_db)
            .zip(number(&record.replaygain_track_peak))
            .map(|(track_gain_db, track_peak)| ReplayGain {
                track_gain_db,
                track_peak,
                album_gain_db: number(&record.replaygain_album_gain_db),
                album_peak: number(&record.replaygain_album_peak),
            });
        let values = TagValues {
            bpm: number(&record.bpm),
            key: record.key.parse().ok(),
            replaygain,
        };
        (values != TagValues::default()).then_some(values)
    }

    /// Each field to write and its text, in the order rows list them.
    fn fields(&self, tag: &dyn FormatTag, notation: KeyNotation) -> Vec<(Field, String)> {
        let mut fields = Vec::new();
        if let Some(bpm) = self.bpm {
            fields.push((Field::Bpm, tag.bpm_form().write(bpm)));
        }
        if let Some(key) = self.key {
            fields.push((Field::Key, notation.write(key)));
        }
        if let Some(rg) = &self.replaygain {
            fields.push((Field::TrackGain, gain_text(rg.track_gain_db)));
            fields.push((Field::TrackPeak, peak_text(rg.track_peak)));
            if let Some(gain) = rg.album_gain_db {
                fields.push((Field::AlbumGain, gain_text(gain)));
            }
            if let Some(peak) = rg.album_peak {
                fields.push((Field::AlbumPeak, peak_text(peak)));
            }
        }
        fields
    }
}

/// ReplayGain 2.0 values as players read them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplayGain {
    /// The gain that brings the track to -18 LUFS, dB.
    pub track_gain_db: f64,
    /// The track's peak, linear (1.0 is full scale).
    pub track_peak: f64,
    /// The album's gain, dB, when the track was measured as part of one.
    pub album_gain_db: Option<f64>,
    /// The album's peak, linear.
    pub album_peak: Option<f64>,
}

/// A gain as the ReplayGain fields hold it: `-6.52 dB` (as loudgain and mp3gain write it).
fn gain_text(db: f64) -> String {
    format!("{db:.2} dB")
}

/// A peak as the ReplayGain fields hold it: `0.988553`.
fn peak_text(peak: f64) -> String {
    format!("{peak:.6}")
}

/// How a run tags files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TagOptions {
    /// Replace values the tags already hold.
    pub overwrite: bool,
    /// Only say what would change.
    pub dry_run: bool,
    /// How the key is written.
    pub notation: KeyNotation,
}

/// What happens to one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The new value is written (or would be, in a dry run).
    Write,
    /// Another value is there and is kept (no `--overwrite`).
    Keep,
    /// The tag already holds the new value.
    Same,
}

/// One field of one file: its name in the file's format, the value it held, the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    /// The field.
    pub field: Field,
    /// Its name as the format spells it (`TBPM`, `INITIALKEY`).
    pub name: String,
    /// The value the tag held.
    pub old: Option<String>,
    /// The value measured.
    pub new: String,
    /// What is done.
    pub action: Action,
}

impl fmt::Display for FieldChange {
    /// `TBPM: - -> 128`, `TKEY: Am kept (new C#m)`, `BPM: 128.00 unchanged`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let old = self.old.as_deref().unwrap_or("-");
        match self.action {
            Action::Write => write!(f, "{}: {old} -> {}", self.name, self.new),
            Action::Keep => write!(f, "{}: {old} kept (new {})", self.name, self.new),
            Action::Same => write!(f, "{}: {} unchanged", self.name, self.new),
        }
    }
}

/// What [`tag_file`] did to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagReport {
    /// Every field asked for, in order.
    pub changes: Vec<FieldChange>,
    /// Whether the file was rewritten.
    pub written: bool,
    /// Items of the fields asked for that another tag of the file holds, which this tool
    /// does not write (an MP3's APEv2 `BPM` or `REPLAYGAIN_TRACK_GAIN`): a player that reads
    /// that tag first shows or applies its value, not ours.
    pub held_elsewhere: Vec<String>,
}

impl TagReport {
    /// What the row says of [`TagReport::held_elsewhere`], where there is something.
    pub fn elsewhere_note(&self) -> Option<String> {
        (!self.held_elsewhere.is_empty()).then(|| {
            format!(
                "an APEv2 tag beside the ID3 tag holds {}, which players that read APE first \
                 use instead (this tool writes ID3 only; remove the APE tag to leave one \
                 value)",
                self.held_elsewhere.join(", ")
            )
        })
    }

    /// Whether some field is (or, in a dry run, would be) written.
    pub fn changes_something(&self) -> bool {
        self.changes.iter().any(|c| c.action == Action::Write)
    }

    /// The fields, `; `-joined.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self.changes.iter().map(ToString::to_string).collect();
        parts.join("; ")
    }
}

/// Why a file was not tagged; nothing of it was changed.
#[derive(Debug, thiserror::Error)]
pub enum TagError {
    /// The file cannot be opened.
    #[error("cannot open: {0}")]
    Open(std::io::Error),
    /// The file cannot be replaced safely.
    #[error("cannot tag safely: {0}")]
    Unsafe(#[from] ReplaceError),
    /// A container lofty does not tag (a bare stream, an unknown format).
    #[error("no tags written: {0}")]
    Unsupported(String),
    /// The container or its present tags do not parse.
    #[error("damaged tags or container: {}", with_causes(.0))]
    Damaged(lofty::error::FileParseError),
    /// The container or its present tags are damaged in a way lofty would read past,
    /// reading another tag than the one players read ([`guard`]).
    #[error("damaged tags or container: {0}")]
    Malformed(String),
    /// lofty could not write the tag into the copy.
    #[error("cannot write the tags: {}", with_causes(.0))]
    Write(#[from] lofty::error::FileEncodingError),
    /// The tagged copy, read back, lacks an item the tag held before (and why, where the
    /// format knows: [`FormatTag::why_lost`]).
    #[error("the tagged copy lost {item} of the tags{}; file left as it was", .why.as_deref().map(|w| format!(" ({w})")).unwrap_or_default())]
    Lost {
        /// The item, as [`FormatTag::items`] names it.
        item: String,
        /// Why the format cannot keep it, where known.
        why: Option<String>,
    },
    /// A dry run foresees [`TagError::Lost`]: the format cannot keep `item` in the tag
    /// it would write.
    #[error("tagging would lose {item} of the tags ({why})")]
    WouldLose {
        /// The item, as [`FormatTag::items`] names it.
        item: String,
        /// Why the format cannot keep it.
        why: String,
    },
    /// The tagged copy, read back, does not hold what was written.
    #[error("the tagged copy reads back {name} = {found:?}, not {wanted:?}; file left as it was")]
    ReadBack {
        /// The field.
        name: String,
        /// What it holds.
        found: Option<String>,
        /// What was written.
        wanted: String,
    },
    /// The tag library panicked on the file: it is left as it was (the tagged copy is
    /// dropped unrenamed).
    #[error("the tag library crashed on the file ({0}); file left as it was")]
    Crashed(String),
}

/// Whether lofty refused to read `err`'s file for an item past its allocation limit
/// (its message is all that says so).
fn over_the_item_limit(err: &lofty::error::FileParseError) -> bool {
    let mut cause: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = cause {
        if e.to_string().contains("allocation would exceed") {
            return true;
        }
        cause = e.source();
    }
    false
}

/// The first item of `held` that `kept` has fewer of, leaving out the fields `written`
/// (each is replaced by one value, which the read-back checks).
fn first_lost(held: &[String], kept: &[String], written: &[&str]) -> Option<String> {
    let count = |items: &[String]| {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for item in items {
            *counts.entry(item.clone()).or_default() += 1;
        }
        counts
    };
    let kept = count(kept);
    count(held)
        .into_iter()
        .filter(|(item, _)| !written.contains(&item.as_str()))
        .find(|(item, n)| kept.get(item).copied().unwrap_or(0) < *n)
        .map(|(item, _)| item)
}

/// `err` and each error under it, `: `-joined (lofty's own message names only the format).
fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(err) = cause {
        text.push_str(&format!(": {err}"));
        cause = err.source();
    }
    text
}

impl From<LoadError> for TagError {
    fn from(err: LoadError) -> Self {
        match err {
            LoadError::Unsupported(why) => TagError::Unsupported(why),
            // lofty's allocation limit is a limit of this tool, not damage: a valid file
            // with a 66 MB cover was called damaged.
            LoadError::Damaged(err) if over_the_item_limit(&err) => TagError::Unsupported(format!(
                "a tag item (cover art?) is larger than the {} MiB this tool reads",
                formats::TAG_ITEM_LIMIT >> 20
            )),
            LoadError::Damaged(err) => TagError::Damaged(err),
            LoadError::Malformed(why) => TagError::Malformed(why),
            LoadError::Io(err) => TagError::Open(err),
        }
    }
}

/// Tags the file at `path` (a link: the file it names) with `values` as `options` say.
pub fn tag_file(
    path: &Path,
    values: &TagValues,
    options: &TagOptions,
) -> Result<TagReport, TagError> {
    crash_guarded(|| tag(path, values, options, None))
}

/// [`tag_file`] with values measured on the file `analysed` (its identity taken before it
/// was read): a file written to or replaced since is refused, so that one recording's
/// tempo, key and gain never land in another's tags.
pub fn tag_analysed_file(
    path: &Path,
    analysed: &FileIdentity,
    values: &TagValues,
    options: &TagOptions,
) -> Result<TagReport, TagError> {
    crash_guarded(|| tag(path, values, options, Some(analysed)))
}

/// Runs `op` with a panic in it turned into [`TagError::Crashed`]. lofty asserts on some
/// files while writing (an MP4 `ilst` that shrinks by exactly 8 bytes): under `tag` the
/// batch's guard would catch that, but `watch --write-tags` tags outside any guard, where
/// one file would end the watch. The copy being edited is a temporary file that unwinding
/// drops, so the original is never replaced by a half-written one.
fn crash_guarded(op: impl FnOnce() -> Result<TagReport, TagError>) -> Result<TagReport, TagError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(op)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_string());
        Err(TagError::Crashed(message))
    })
}

fn tag(
    path: &Path,
    values: &TagValues,
    options: &TagOptions,
    analysed: Option<&FileIdentity>,
) -> Result<TagReport, TagError> {
    let target = fs::canonicalize(path).map_err(TagError::Open)?;
    let replaceable = Replaceable::check(&target)?;
    if let Some(analysed) = analysed {
        replaceable.is_as_analysed(analysed)?;
    }
    let mut file = File::open(&target).map_err(TagError::Open)?;
    // Claimed before the tags are read, kept until `file` closes after the rename. A dry
    // run writes nothing and claims nothing: it would make a real run beside it skip.
    if !options.dry_run {
        replaceable.claim(&file)?;
    }
    let mut tag = formats::load(&mut file)?;
    let changes: Vec<FieldChange> = values
        .fields(&*tag, options.notation)
        .into_iter()
        .map(|(field, new)| {
            let old = tag.get(field);
            let action = match &old {
                Some(old) if *old == new => Action::Same,
                Some(_) if !options.overwrite => Action::Keep,
                _ => Action::Write,
            };
            FieldChange {
                field,
                name: tag.name(field),
                old,
                new,
                action,
            }
        })
        .collect();
    let held_elsewhere = tag
        .held_elsewhere()
        .into_iter()
        .filter(|(field, _)| changes.iter().any(|c| c.field == *field))
        .map(|(_, name)| name)
        .collect();
    let mut report = TagReport {
        changes,
        written: false,
        held_elsewhere,
    };
    if !report.changes_something() {
        return Ok(report);
    }
    let held = tag.items();
    let writes: Vec<&FieldChange> = report
        .changes
        .iter()
        .filter(|c| c.action == Action::Write)
        .collect();
    if options.dry_run {
        // What the real run's read-back would find lost, where the format knows it ahead
        // (a 2.2 date): a dry run had promised a change the real run then skipped.
        let foreseen = held
            .iter()
            .filter(|item| !writes.iter().any(|c| c.name == **item))
            .find_map(|item| Some((item.clone(), tag.why_lost(item)?)));
        return match foreseen {
            Some((item, why)) => Err(TagError::WouldLose { item, why }),
            None => Ok(report),
        };
    }
    for change in &writes {
        tag.set(change.field, &change.new);
    }
    replaceable.replace(&mut file, |copy| -> Result<(), TagError> {
        // lofty finds the format from where the file stands: at its start.
        copy.rewind().map_err(TagError::Open)?;
        tag.save(copy)?;
        let back = formats::load(copy)?;
        let written: Vec<&str> = writes.iter().map(|c| c.name.as_str()).collect();
        if let Some(item) = first_lost(&held, &back.items(), &written) {
            let why = tag.why_lost(&item);
            return Err(TagError::Lost { item, why });
        }
        for change in &writes {
            let found = back.get(change.field);
            if found.as_deref() != Some(change.new.as_str()) {
                return Err(TagError::ReadBack {
                    name: change.name.clone(),
                    found,
                    wanted: change.new.clone(),
                });
            }
        }
        Ok(())
    })?;
    report.written = true;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    /// `tag` and `watch --write-tags` say the same of an APE value beside the ID3 tag
    /// (`watch` said nothing of it).
    #[test]
    fn a_value_held_in_an_ape_tag_is_one_note() {
        let mut report = TagReport {
            changes: Vec::new(),
            written: true,
            held_elsewhere: Vec::new(),
        };
        assert_eq!(report.elsewhere_note(), None);
        report.held_elsewhere = names(&["APE:BPM", "APE:REPLAYGAIN_TRACK_GAIN"]);
        let note = report.elsewhere_note().unwrap();
        assert!(
            note.starts_with("an APEv2 tag beside the ID3 tag holds APE:BPM, APE:REPLAYGAIN"),
            "{note}"
        );
    }

    #[test]
    fn a_panic_in_the_tag_library_is_an_error_of_the_file() {
        let err = crash_guarded(|| panic!("assertion failed: ilst shrank")).unwrap_err();
        assert!(matches!(&err, TagError::Crashed(m) if m == "assertion failed: ilst shrank"));
        assert!(err.to_string().contains("file left as it was"), "{err}");
        let formatted = crash_guarded(|| panic!("at {} bytes", 8)).unwrap_err();
        assert!(matches!(&formatted, TagError::Crashed(m) if m == "at 8 bytes"));
    }

    #[test]
    fn an_item_the_copy_lacks_is_lost_unless_it_was_written() {
        let held = names(&["TIT2", "APIC", "APIC", "TBPM", "TBPM"]);
        assert_eq!(first_lost(&held, &held, &[]), None);
        let one_cover = names(&["TIT2", "APIC", "TBPM", "TBPM", "TKEY"]);
        assert_eq!(first_lost(&held, &one_cover, &[]), Some("APIC".into()));
        let one_tempo = names(&["TIT2", "APIC", "APIC", "TBPM"]);
        assert_eq!(first_lost(&held, &one_tempo, &[]), Some("TBPM".into()));
        assert_eq!(first_lost(&held, &one_tempo, &["TBPM"]), None);
    }

    #[test]
    fn each_field_says_what_happens_to_it() {
        let change = |old: Option<&str>, action| FieldChange {
            field: Field::Bpm,
            name: "TBPM".into(),
            old: old.map(String::from),
            new: "128".into(),
            action,
        };
        let report = TagReport {
            held_elsewhere: Vec::new(),
            changes: vec![
                change(None, Action::Write),
                change(Some("99"), Action::Keep),
                change(Some("128"), Action::Same),
            ],
            written: false,
        };
        assert_eq!(
            report.summary(),
            "TBPM: - -> 128; TBPM: 99 kept (new 128); TBPM: 128 unchanged"
        );
        assert!(report.changes_something());
    }

    #[test]
    fn replaygain_is_written_as_players_read_it() {
        assert_eq!(gain_text(-6.5249), "-6.52 dB");
        assert_eq!(gain_text(2.1), "2.10 dB");
        assert_eq!(peak_text(0.9885531), "0.988553");
    }

    #[test]
    fn a_row_gives_the_values_it_holds_and_a_failed_row_none() {
        let mut record = AnalyzeRecord {
            bpm: "128.000".into(),
            key: "A minor".into(),
            replaygain_track_gain_db: "-6.52".into(),
            replaygain_track_peak: "0.988553".into(),
            status: "ok".into(),
            ..AnalyzeRecord::default()
        };
        let values = TagValues::of_record(&record).unwrap();
        assert_eq!(values.bpm, Some(128.0));
        assert_eq!(values.key.map(|k| k.to_string()), Some("A minor".into()));
        let rg = values.replaygain.unwrap();
        assert_eq!(
            (rg.track_gain_db, rg.track_peak, rg.album_gain_db),
            (-6.52, 0.988553, None)
        );
        record.key.clear();
        record.replaygain_track_gain_db.clear();
        let values = TagValues::of_record(&record).unwrap();
        assert_eq!((values.key, values.replaygain), (None, None));
        // A row without a pulse: its key is written, no BPM.
        record.status = "error".into();
        record.bpm.clear();
        record.key = "A minor".into();
        let values = TagValues::of_record(&record).unwrap();
        assert_eq!((values.bpm, values.key.is_some()), (None, true));
        // A failed row holds nothing.
        let failed = AnalyzeRecord {
            status: "error".into(),
            error: "decode: corrupt_stream: bad bytes".into(),
            ..AnalyzeRecord::default()
        };
        assert_eq!(TagValues::of_record(&failed), None);
    }
}
