//! A whole synthetic dataset: a deterministic plan of varied tracks, and a
//! writer that renders them into a folder with a `manifest.csv`.
//!
//! The plan spreads tempi over four bands (60-90, 90-120, 120-150,
//! 150-200 BPM; every four consecutive items cover all four), mixes styles
//! suited to each band, puts every fifth item in 3/4, every third into FLAC
//! and every seventh into mono, and varies swing, timing jitter and noise.
//! About four in ten tempi carry one decimal (e.g. 127.4) so that sub-BPM
//! precision is exercised.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use crate::arrange::track_key;
use crate::io::{Error, write_flac, write_wav};
use crate::render::try_render;
use crate::rng::{Rand, Stream};
use crate::spec::{Meter, Style, TrackSpec};

/// The manifest's file name inside a dataset folder.
pub const MANIFEST_FILE: &str = "manifest.csv";

/// The manifest's header line (without the newline).
pub const MANIFEST_HEADER: &str = "file,bpm,style,meter,format,seconds,seed,key";

/// The tempo bands the plan covers, `[low, high)` in BPM (the last one
/// includes 200).
pub const TEMPO_BANDS: [(f64, f64); 4] =
    [(60.0, 90.0), (90.0, 120.0), (120.0, 150.0), (150.0, 200.0)];

/// What dataset to plan.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetSpec {
    /// Number of tracks. Default: 24.
    pub count: usize,
    /// Length of each track in seconds. Default: 30.
    pub seconds: f64,
    /// Seed of the whole plan; each track gets its own seed drawn from it.
    /// Default: 0.
    pub seed: u64,
    /// Sample rate of every track in Hz. Default: 44 100.
    pub sample_rate: u32,
}

impl Default for DatasetSpec {
    fn default() -> Self {
        DatasetSpec {
            count: 24,
            seconds: 30.0,
            seed: 0,
            sample_rate: 44_100,
        }
    }
}

impl DatasetSpec {
    /// Sets [`DatasetSpec::count`].
    pub fn with_count(mut self, count: usize) -> Self {
        self.count = count;
        self
    }

    /// Sets [`DatasetSpec::seconds`].
    pub fn with_seconds(mut self, seconds: f64) -> Self {
        self.seconds = seconds;
        self
    }

    /// Sets [`DatasetSpec::seed`].
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets [`DatasetSpec::sample_rate`].
    pub fn with_sample_rate(mut self, sample_rate: u32) -> Self {
        self.sample_rate = sample_rate;
        self
    }
}

/// File format of a dataset item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AudioFormat {
    /// 16-bit PCM WAV.
    Wav,
    /// 16-bit FLAC.
    Flac,
}

impl AudioFormat {
    /// File extension and manifest name: `"wav"` or `"flac"`.
    pub fn extension(self) -> &'static str {
        match self {
            AudioFormat::Wav => "wav",
            AudioFormat::Flac => "flac",
        }
    }
}

/// One planned track.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetItem {
    /// File name relative to the dataset folder, e.g.
    /// `synth-000-fourfloor-128.0.wav`.
    pub file: String,
    /// What to render.
    pub spec: TrackSpec,
    /// How to store it.
    pub format: AudioFormat,
}

/// Styles that suit each tempo band, in 4/4. Repeats weight the draw.
const BAND_STYLES: [&[Style]; 4] = [
    &[
        Style::HipHop,
        Style::HipHop,
        Style::Ambientish,
        Style::Rock,
        Style::Latin,
    ],
    &[
        Style::HipHop,
        Style::Rock,
        Style::Latin,
        Style::FourOnTheFloor,
    ],
    &[
        Style::FourOnTheFloor,
        Style::FourOnTheFloor,
        Style::Rock,
        Style::Latin,
    ],
    &[
        Style::DrumAndBass,
        Style::DrumAndBass,
        Style::Rock,
        Style::FourOnTheFloor,
    ],
];

/// Styles for 3/4 items.
const THREE_FOUR_STYLES: [Style; 4] = [Style::Waltz, Style::Waltz, Style::Rock, Style::Ambientish];

/// Plans `spec.count` tracks. The same spec always gives the same plan.
pub fn dataset_plan(spec: &DatasetSpec) -> Vec<DatasetItem> {
    let mut rng = Rand::new(spec.seed, Stream::Plan);
    let mut bands = [0usize, 1, 2, 3];
    (0..spec.count)
        .map(|i| {
            if i % 4 == 0 {
                // A fresh band order every four items (Fisher-Yates).
                for j in (1..bands.len()).rev() {
                    bands.swap(j, rng.index(j + 1));
                }
            }
            let band = bands[i % 4];
            plan_item(i, band, spec, &mut rng)
        })
        .collect()
}

fn plan_item(index: usize, band: usize, spec: &DatasetSpec, rng: &mut Rand) -> DatasetItem {
    let meter = if index % 5 == 2 {
        Meter::Three
    } else {
        Meter::Four
    };
    let style = if meter == Meter::Three {
        rng.pick(&THREE_FOUR_STYLES)
    } else {
        rng.pick(BAND_STYLES[band])
    };
    let (lo, hi) = TEMPO_BANDS[band];
    let raw = if style == Style::DrumAndBass {
        rng.range(165.0, 178.0)
    } else {
        lo * libm::pow(hi / lo, rng.unit())
    };
    let bpm = if rng.chance(0.4) {
        (raw * 10.0).round() / 10.0
    } else {
        raw.round()
    }
    .clamp(lo, if band == 3 { hi } else { hi - 0.1 });
    let swing = match style {
        Style::HipHop => round_to(rng.range(0.1, 0.35), 100.0),
        Style::Latin | Style::Rock | Style::FourOnTheFloor if rng.chance(0.25) => {
            round_to(rng.range(0.05, 0.2), 100.0)
        }
        _ => 0.0,
    };
    let (track, format) = recorded(index, TrackSpec::new(bpm, style), spec, rng);
    let track = track.with_meter(meter).with_swing(swing);
    DatasetItem {
        file: format!(
            "synth-{index:03}-{}-{bpm:.1}.{}",
            style.slug(),
            format.extension()
        ),
        spec: track,
        format,
    }
}

/// The recording conditions of item `index` of a plan, applied to `track`: the set's length
/// and rate, timing jitter, noise and the track's seed (drawn from `rng` in that order), mono
/// for every seventh item and FLAC for every third.
fn recorded(
    index: usize,
    track: TrackSpec,
    spec: &DatasetSpec,
    rng: &mut Rand,
) -> (TrackSpec, AudioFormat) {
    let humanize_ms = if rng.chance(0.6) {
        round_to(rng.range(2.0, 15.0), 10.0)
    } else {
        0.0
    };
    let noise_db = rng.range(-60.0, -30.0).round();
    let seed = rng.next_u64();
    let channels = if index % 7 == 6 { 1 } else { 2 };
    let format = if index % 3 == 2 {
        AudioFormat::Flac
    } else {
        AudioFormat::Wav
    };
    let track = track
        .with_seconds(spec.seconds)
        .with_sample_rate(spec.sample_rate)
        .with_channels(channels)
        .with_seed(seed)
        .with_humanize_ms(humanize_ms)
        .with_noise_db(noise_db);
    (track, format)
}

/// The header of a swing set's manifest ([`swing_manifest_csv`]): the plan's columns, then
/// where the swung off-beat eighth falls within the beat, the feel it makes, and the source
/// name (`synth-swing`) that keeps it apart from the plain synthetic sets in evaluations.
pub const SWING_MANIFEST_HEADER: &str =
    "file,bpm,style,meter,format,seconds,seed,key,offbeat,feel,source";

/// The largest swing of a swing set: 1/3 of the eighth note puts the off-beat eighth at 2/3
/// of the beat, on the triplet grid.
pub const TRIPLET_SWING: f64 = 1.0 / 3.0;

/// Swing below which a swing set's track is labelled `straight` (off-beat before 0.54 beats).
const STRAIGHT_BELOW: f64 = 0.08;

/// Where the off-beat eighth falls within the beat, 0.5 (straight) to 0.667 (triplet), for
/// the styles whose swing unit is the eighth note: [`TrackSpec::swing`] lengthens the first
/// eighth of each beat by that fraction of an eighth.
pub fn offbeat_of(swing: f64) -> f64 {
    (1.0 + swing) / 2.0
}

/// Plans a swing set: the plan of [`dataset_plan`] (same tempi, meters, formats, jitter and
/// noise), with the styles that swing sixteenths (hip hop, drum and bass) replaced by ones
/// that swing eighths, and swing spread evenly from none to [`TRIPLET_SWING`] in a shuffled
/// order, so that every tempo band meets every amount of swing. Files are named `swing-...`.
pub fn swing_plan(spec: &DatasetSpec) -> Vec<DatasetItem> {
    let mut items = dataset_plan(spec);
    let mut rng = Rand::new(spec.seed ^ 0x5317_6e00, Stream::Plan);
    let mut order: Vec<usize> = (0..items.len()).collect();
    for j in (1..order.len()).rev() {
        order.swap(j, rng.index(j + 1));
    }
    let last = items.len().saturating_sub(1).max(1) as f64;
    for (index, (item, rank)) in items.iter_mut().zip(order).enumerate() {
        let style = match item.spec.style {
            Style::HipHop => Style::Rock,
            Style::DrumAndBass => Style::FourOnTheFloor,
            other => other,
        };
        let swing = round_to(TRIPLET_SWING * rank as f64 / last, 1000.0);
        item.spec = item.spec.clone().with_style(style).with_swing(swing);
        item.file = format!(
            "swing-{index:03}-{}-{:.1}-s{:03.0}.{}",
            style.slug(),
            item.spec.bpm,
            swing * 1000.0,
            item.format.extension()
        );
    }
    items
}

/// The manifest of a swing set: [`SWING_MANIFEST_HEADER`], then each item's [`manifest_csv`]
/// line with its off-beat place ([`offbeat_of`], 3 decimals), feel (`swung`, or
/// `straight` below a swing of 0.08) and source `synth-swing`.
pub fn swing_manifest_csv(items: &[DatasetItem]) -> String {
    let plain = manifest_csv(items);
    let mut out = String::from(SWING_MANIFEST_HEADER);
    out.push('\n');
    for (line, item) in plain.lines().skip(1).zip(items) {
        let swing = item.spec.swing;
        let feel = if swing < STRAIGHT_BELOW {
            "straight"
        } else {
            "swung"
        };
        let _ = writeln!(out, "{line},{:.3},{feel},synth-swing", offbeat_of(swing));
    }
    out
}

/// The header of a compound set's manifest ([`compound_manifest_csv`]): the plan's
/// columns, then the feel (`compound`) and the source name (`synth-compound`).
pub const COMPOUND_MANIFEST_HEADER: &str =
    "file,bpm,style,meter,format,seconds,seed,key,feel,source";

/// Plans a compound set: `spec.count` tracks in 6/8 and 12/8, jigs and shuffles in turn,
/// their tempo counted in dotted quarters (the beat a listener taps, as swing-dev counts
/// its jigs): jigs 80-140, 12/8 shuffles 55-100, the slow 6/8 shuffles (one in six) 50-75
/// beats per minute. Formats, channels, timing jitter and noise vary as in
/// [`dataset_plan`]. Files are named `compound-...`.
pub fn compound_plan(spec: &DatasetSpec) -> Vec<DatasetItem> {
    let mut rng = Rand::new(spec.seed ^ 0x6_8c0, Stream::Plan);
    (0..spec.count)
        .map(|index| {
            let (style, meter, lo, hi) = match index % 6 {
                0 | 2 | 4 => {
                    let meter = if index % 12 == 4 {
                        Meter::TwelveEight
                    } else {
                        Meter::SixEight
                    };
                    (Style::Jig, meter, 80.0, 140.0)
                }
                3 => (Style::Shuffle, Meter::SixEight, 50.0, 75.0),
                _ => (Style::Shuffle, Meter::TwelveEight, 55.0, 100.0),
            };
            let bpm = round_to(lo * libm::pow(hi / lo, rng.unit()), 10.0);
            let (track, format) = recorded(index, TrackSpec::new(bpm, style), spec, &mut rng);
            let track = track.with_meter(meter);
            DatasetItem {
                file: format!(
                    "compound-{index:03}-{}-{}-{bpm:.1}.{}",
                    style.slug(),
                    meter.as_str().replace('/', "-"),
                    format.extension()
                ),
                spec: track,
                format,
            }
        })
        .collect()
}

/// The manifest of a compound set: [`COMPOUND_MANIFEST_HEADER`], then each item's
/// [`manifest_csv`] line with feel `compound` and source `synth-compound`.
pub fn compound_manifest_csv(items: &[DatasetItem]) -> String {
    let plain = manifest_csv(items);
    let mut out = String::from(COMPOUND_MANIFEST_HEADER);
    out.push('\n');
    for line in plain.lines().skip(1) {
        let _ = writeln!(out, "{line},compound,synth-compound");
    }
    out
}

/// Renders the compound set of `spec` ([`compound_plan`]) into `dir` as [`write_dataset`]
/// does, with the manifest of [`compound_manifest_csv`]. Returns the plan.
pub fn write_compound_dataset(dir: &Path, spec: &DatasetSpec) -> Result<Vec<DatasetItem>, Error> {
    let items = compound_plan(spec);
    write_items(dir, &items, &compound_manifest_csv(&items))?;
    Ok(items)
}

fn round_to(x: f64, scale: f64) -> f64 {
    (x * scale).round() / scale
}

/// The manifest for `items`: [`MANIFEST_HEADER`], then one line per item.
/// File names are plain ASCII without commas, so no quoting is needed.
pub fn manifest_csv(items: &[DatasetItem]) -> String {
    let mut out = String::new();
    out.push_str(MANIFEST_HEADER);
    out.push('\n');
    for item in items {
        let s = &item.spec;
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{}",
            item.file,
            s.bpm,
            s.style.slug(),
            s.meter,
            item.format.extension(),
            s.seconds,
            s.seed,
            track_key(s)
        );
    }
    out
}

/// Renders the plan of `spec` into `dir` (created if missing): one audio
/// file per item, then [`MANIFEST_FILE`]. Every file is written atomically;
/// existing files of the same names are replaced. Returns the plan.
pub fn write_dataset(dir: &Path, spec: &DatasetSpec) -> Result<Vec<DatasetItem>, Error> {
    let items = dataset_plan(spec);
    write_items(dir, &items, &manifest_csv(&items))?;
    Ok(items)
}

/// Renders the swing set of `spec` ([`swing_plan`]) into `dir` as [`write_dataset`] does,
/// with the manifest of [`swing_manifest_csv`]. Returns the plan.
pub fn write_swing_dataset(dir: &Path, spec: &DatasetSpec) -> Result<Vec<DatasetItem>, Error> {
    let items = swing_plan(spec);
    write_items(dir, &items, &swing_manifest_csv(&items))?;
    Ok(items)
}

/// Writes every item's audio into `dir` (created if missing), then `manifest` as
/// [`MANIFEST_FILE`], each file atomically.
fn write_items(dir: &Path, items: &[DatasetItem], manifest: &str) -> Result<(), Error> {
    fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for item in items {
        let samples = try_render(&item.spec)?;
        let path = dir.join(&item.file);
        let (rate, channels) = (item.spec.sample_rate, item.spec.channels);
        match item.format {
            AudioFormat::Wav => write_wav(&path, &samples, rate, channels)?,
            AudioFormat::Flac => write_flac(&path, &samples, rate, channels)?,
        }
    }
    let manifest_path = dir.join(MANIFEST_FILE);
    let tmp = dir.join(format!(".{MANIFEST_FILE}.{}.tmp", std::process::id()));
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    fs::write(&tmp, manifest).map_err(io_err(&tmp))?;
    fs::rename(&tmp, &manifest_path).map_err(io_err(&manifest_path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn band_of(bpm: f64) -> usize {
        TEMPO_BANDS
            .iter()
            .position(|&(lo, hi)| bpm >= lo && (bpm < hi || (hi == 200.0 && bpm <= hi)))
            .unwrap_or_else(|| panic!("bpm {bpm} outside every band"))
    }

    #[test]
    fn default_plan_covers_bands_meters_formats() {
        let plan = dataset_plan(&DatasetSpec::default());
        assert_eq!(plan.len(), 24);
        for band in 0..4 {
            assert!(
                plan.iter().any(|it| band_of(it.spec.bpm) == band),
                "band {band}"
            );
        }
        for meter in [Meter::Four, Meter::Three] {
            assert!(plan.iter().any(|it| it.spec.meter == meter), "{meter}");
        }
        for format in [AudioFormat::Wav, AudioFormat::Flac] {
            assert!(plan.iter().any(|it| it.format == format), "{format:?}");
        }
        assert!(plan.iter().any(|it| it.spec.bpm.fract() != 0.0));
        assert!(plan.iter().any(|it| it.spec.channels == 1));
        for item in &plan {
            item.spec.validate().unwrap();
            assert!(item.file.ends_with(item.format.extension()));
            assert!((60.0..=200.0).contains(&item.spec.bpm));
        }
        let mut names: Vec<&str> = plan.iter().map(|it| it.file.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), plan.len());
    }

    #[test]
    fn compound_plan_mixes_jigs_and_shuffles_in_6_8_and_12_8_within_the_tempo_range() {
        let spec = DatasetSpec::default().with_count(48).with_seed(5);
        let plan = compound_plan(&spec);
        assert_eq!(plan.len(), 48);
        for (style, meter) in [
            (Style::Jig, Meter::SixEight),
            (Style::Jig, Meter::TwelveEight),
            (Style::Shuffle, Meter::SixEight),
            (Style::Shuffle, Meter::TwelveEight),
        ] {
            let n = plan
                .iter()
                .filter(|it| (it.spec.style, it.spec.meter) == (style, meter))
                .count();
            assert!(n >= 4, "{style} in {meter}: {n}");
        }
        for item in &plan {
            item.spec.validate().unwrap();
            // Inside the analyzer's default 50-220 BPM, counted in dotted quarters.
            assert!((50.0..=140.0).contains(&item.spec.bpm), "{}", item.file);
        }
        assert_eq!(plan, compound_plan(&spec));
        let manifest = compound_manifest_csv(&plan);
        let mut lines = manifest.lines();
        assert_eq!(lines.next(), Some(COMPOUND_MANIFEST_HEADER));
        assert!(lines.all(|l| l.ends_with(",compound,synth-compound")));
    }

    #[test]
    fn swing_plan_spreads_the_off_beat_from_straight_to_triplet_in_eighth_swing_styles() {
        let spec = DatasetSpec::default().with_count(48).with_seed(5);
        let plain = dataset_plan(&spec);
        let plan = swing_plan(&spec);
        assert_eq!(plan.len(), 48);
        let offbeats: Vec<f64> = plan.iter().map(|it| offbeat_of(it.spec.swing)).collect();
        let (lo, hi) = offbeats
            .iter()
            .fold((1.0f64, 0.0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        assert_eq!(lo, 0.5);
        assert!((hi - 2.0 / 3.0).abs() < 1e-3, "{hi}");
        for (item, base) in plan.iter().zip(&plain) {
            item.spec.validate().unwrap();
            assert!(!matches!(
                item.spec.style,
                Style::HipHop | Style::DrumAndBass
            ));
            assert_eq!(
                (item.spec.bpm, item.spec.meter),
                (base.spec.bpm, base.spec.meter)
            );
            assert!(item.file.starts_with("swing-"), "{}", item.file);
        }
        // Every tempo band meets both a little and a lot of swing.
        for band in 0..4 {
            let swings: Vec<f64> = plan
                .iter()
                .filter(|it| band_of(it.spec.bpm) == band)
                .map(|it| it.spec.swing)
                .collect();
            assert!(swings.iter().any(|&s| s < 0.17), "band {band}: {swings:?}");
            assert!(swings.iter().any(|&s| s >= 0.17), "band {band}: {swings:?}");
        }
        let mut names: Vec<&str> = plan.iter().map(|it| it.file.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), plan.len());
        assert_eq!(swing_plan(&spec), plan, "the same spec gives the same plan");
    }

    #[test]
    fn swing_manifest_adds_the_off_beat_place_and_the_feel() {
        let plan = swing_plan(&DatasetSpec::default().with_count(24));
        let csv = swing_manifest_csv(&plan);
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some(SWING_MANIFEST_HEADER));
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        assert_eq!(rows.len(), 24);
        for (row, item) in rows.iter().zip(&plan) {
            assert_eq!(row.len(), SWING_MANIFEST_HEADER.split(',').count());
            assert_eq!(row[0], item.file);
            let offbeat: f64 = row[8].parse().unwrap();
            assert!((offbeat - offbeat_of(item.spec.swing)).abs() < 5e-4);
            let want = if item.spec.swing < 0.08 {
                "straight"
            } else {
                "swung"
            };
            assert_eq!(row[9], want, "{}", item.file);
            assert_eq!(row[10], "synth-swing");
        }
        assert!(rows.iter().any(|r| r[9] == "straight") && rows.iter().any(|r| r[9] == "swung"));
    }

    #[test]
    fn every_four_items_cover_every_band() {
        let plan = dataset_plan(&DatasetSpec::default().with_count(40).with_seed(9));
        for chunk in plan.chunks(4) {
            let mut bands: Vec<usize> = chunk.iter().map(|it| band_of(it.spec.bpm)).collect();
            bands.sort_unstable();
            assert_eq!(bands, [0, 1, 2, 3]);
        }
    }

    #[test]
    fn plan_is_deterministic_and_seeded() {
        let a = dataset_plan(&DatasetSpec::default());
        assert_eq!(a, dataset_plan(&DatasetSpec::default()));
        assert_ne!(a, dataset_plan(&DatasetSpec::default().with_seed(1)));
    }

    #[test]
    fn the_key_column_follows_the_columns_of_before() {
        let items = dataset_plan(&DatasetSpec::default());
        let manifest = manifest_csv(&items);
        let lines: Vec<&str> = manifest.lines().collect();
        assert_eq!(
            lines[0], "file,bpm,style,meter,format,seconds,seed,key",
            "a new column goes last, so that the others keep their bytes"
        );
        for (item, line) in items.iter().zip(&lines[1..]) {
            let s = &item.spec;
            let before = [
                item.file.clone(),
                s.bpm.to_string(),
                s.style.slug().to_string(),
                s.meter.to_string(),
                item.format.extension().to_string(),
                s.seconds.to_string(),
                s.seed.to_string(),
            ]
            .join(",");
            let key = line.strip_prefix(&before).and_then(|k| k.strip_prefix(','));
            let key = key.unwrap_or_else(|| panic!("{line} does not extend {before}"));
            let (tonic, mode) = key.split_once(' ').unwrap();
            assert!(["major", "minor"].contains(&mode), "{key}");
            assert!(!tonic.contains('b'), "sharps only: {key}");
        }
        // The default set has both modes and more than one tonic.
        let keys: std::collections::BTreeSet<String> = items
            .iter()
            .map(|i| track_key(&i.spec).to_string())
            .collect();
        assert!(keys.iter().any(|k| k.ends_with("minor")), "{keys:?}");
        assert!(keys.iter().any(|k| k.ends_with("major")), "{keys:?}");
        assert!(keys.len() > 4, "{keys:?}");
    }

    #[test]
    fn writes_audio_and_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let spec = DatasetSpec::default()
            .with_count(3)
            .with_seconds(1.0)
            .with_sample_rate(16_000);
        let items = write_dataset(dir.path(), &spec).unwrap();
        let manifest = fs::read_to_string(dir.path().join(MANIFEST_FILE)).unwrap();
        let lines: Vec<&str> = manifest.lines().collect();
        assert_eq!(lines[0], MANIFEST_HEADER);
        assert_eq!(lines.len(), 4);
        for (item, line) in items.iter().zip(&lines[1..]) {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), 8);
            assert_eq!(fields[0], item.file);
            assert_eq!(fields[1].parse::<f64>().unwrap(), item.spec.bpm);
            assert_eq!(fields[7], track_key(&item.spec).to_string());
            assert!(dir.path().join(&item.file).is_file());
        }
        assert_eq!(items[2].format, AudioFormat::Flac);
        let flac = fs::read(dir.path().join(&items[2].file)).unwrap();
        assert_eq!(&flac[..4], b"fLaC");
        let mut wav = hound::WavReader::open(dir.path().join(&items[0].file)).unwrap();
        assert_eq!(wav.spec().sample_rate, 16_000);
        assert_eq!(
            wav.samples::<i16>().count(),
            16_000 * usize::from(items[0].spec.channels)
        );
        // Audio files plus the manifest, no temporary leftovers.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 4);
    }
}
