//! The flags that `analyze`, `evaluate` and `compare` share, checked in one place and by
//! one rule each, so that a value means the same thing in every command:
//!
//! - `--timeout SECS`: a positive, finite number of seconds, at most a year
//!   ([`parse_timeout`]); `0`, negative numbers, `nan`, `inf` and more than a year are
//!   usage errors (exit status 2). Leave the flag out for no limit.
//! - `--workers N`: a whole number of at least 1 ([`parse_workers`]; `compare` takes a
//!   comma-separated list of them); `0` is a usage error. A count that looks unwise is kept
//!   or lowered with a warning ([`resolve_workers`]): lowered to what the memory or the
//!   open-file limit can hold ([`crate::open_files`]); without the flag, the machine's
//!   [`batch::default_workers`], lowered the same way.
//! - `--shard K/N` (`analyze`): the K-th of N parts, `1 <= K <= N` ([`parse_shard`]).
//! - `--min-bpm`/`--max-bpm`: the analyzer's tempo range ([`analyzer`]), refused when it
//!   is empty or not positive.
//! - `--analysis-seconds S`, `--segments K`, `--full` ([`SamplingArgs`]): decode only K
//!   segments of S seconds of a long file ([`analyzer_core::Sampling`]), or all of it.
//!   S is 0 (the whole file) or at least 10 ([`parse_analysis_seconds`]), K is 1..=32
//!   ([`parse_segments`]). Without either the default is 4 x 15 s; `--analysis-seconds S`
//!   alone is one segment of S seconds, `--segments K` alone K of the default 15 s, and
//!   `--segments` with nothing sampled is a usage error. The same rule reads
//!   `ours:analysis-seconds=S,segments=K` ([`sampling`]).
//! - `--descriptors tempo,key,loudness` ([`Descriptors`]): what is computed; tempo always
//!   (it decides a row's status), the key unless left out, the loudness when named. Default
//!   `tempo,key`.
//! - `--compound-beat quarter|dotted-quarter` ([`CompoundBeat`]): which note of a 6/8 or
//!   12/8 bar the tempo counts. Default `quarter`.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use analyzer_core::batch;
use analyzer_core::{Analyzer, AnalyzerConfig, CompoundBeat, Sampling};

use crate::runner::{ProgressMode, RunOptions, Schedule};
use crate::shard::Shard;

/// The `--workers` value parser: a whole number of at least 1.
pub fn parse_workers(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1 (0 workers would never finish)".to_string()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("not a whole number ({e})")),
    }
}

/// The value parser of a synthetic set's track count (`dataset synth --count`,
/// `--synth-count`): from 1 to [`crate::manifest::MAX_SYNTH_COUNT`]. Zero tracks wrote a
/// header-only manifest that every command then refused.
pub fn parse_track_count(s: &str) -> Result<usize, String> {
    let max = crate::manifest::MAX_SYNTH_COUNT;
    match s.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        Ok(n) => Err(format!("must be from 1 to {max} tracks (got {n})")),
        Err(e) => Err(format!("not a whole number ({e})")),
    }
}

/// The `--shard K/N` value parser: whole numbers with `1 <= K <= N`.
pub fn parse_shard(s: &str) -> Result<Shard, String> {
    let (k, n) = s
        .split_once('/')
        .ok_or_else(|| "not K/N (the K-th of N parts, e.g. 2/8)".to_string())?;
    let parse = |v: &str| {
        v.trim()
            .parse::<usize>()
            .map_err(|e| format!("{v:?} is not a whole number ({e})"))
    };
    let (index, count) = (parse(k)?, parse(n)?);
    if count == 0 || index == 0 || index > count {
        return Err(format!(
            "K must be from 1 to N, and N at least 1 (got {index}/{count})"
        ));
    }
    Ok(Shard { index, count })
}

/// The longest `--timeout` (and the other SECS flags that share its parser): a year. A
/// longer one is surely a typo, and one of about 9.2e18 s or more cannot be added to a
/// clock reading at all (the deadline arithmetic of the library and of hyper would overflow).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The `--timeout` value parser: a positive, finite number of seconds, at most
/// [`MAX_TIMEOUT`].
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|e| format!("not a number ({e})"))?;
    if secs.is_nan() || secs <= 0.0 || secs.is_infinite() {
        return Err("must be a positive number of seconds".to_string());
    }
    if secs > MAX_TIMEOUT.as_secs_f64() {
        return Err(format!(
            "must be at most {} seconds (a year)",
            MAX_TIMEOUT.as_secs()
        ));
    }
    let limit = Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())?;
    // `1e-10` became `0ns`, the limit `0` is refused as.
    if limit.is_zero() {
        return Err("must be at least one nanosecond".to_string());
    }
    Ok(limit)
}

/// The `--seconds` and `--synth-seconds` value parser of generated audio (a synthetic
/// track, an excerpt): 1 to 3600 seconds. `1e-300` made empty WAVs with a 300-digit
/// `seconds` cell (exit 0), and `0.0001` excerpts of four samples.
pub fn parse_audio_length(s: &str) -> Result<f64, String> {
    let secs: f64 = s.parse().map_err(|e| format!("not a number ({e})"))?;
    if !(1.0..=3600.0).contains(&secs) {
        return Err("must be 1 to 3600 seconds".to_string());
    }
    Ok(secs)
}

/// More workers than this many per core only add contention; warn past it.
const MAX_WORKERS_PER_CORE: usize = 4;

/// The worker count a run uses, decided here once for every command: the one asked for
/// (at least 1, [`parse_workers`]), checked against the host with a warning on stderr when
/// it was lowered or looks unwise ([`check_workers`]), or the default for this machine.
/// Nothing below it validates or clamps the count again.
pub fn resolve_workers(requested: Option<usize>) -> usize {
    resolve_workers_beside(requested, 0)
}

/// [`resolve_workers`] for a command that keeps `reserved` descriptors besides its
/// workers' and those every command holds (`serve`: room for one connection).
pub fn resolve_workers_beside(requested: Option<usize>, reserved: usize) -> usize {
    let limit = crate::host::open_file_limit();
    let (workers, warning) = match requested {
        Some(requested) => check_workers(requested, limit, reserved),
        // The default is lowered too, but without a warning: nothing was asked for.
        None => (
            fit_to_files(batch::default_workers(), limit, reserved).0,
            None,
        ),
    };
    if let Some(warning) = warning {
        eprintln!("eval-cli: warning: {warning}");
    }
    workers
}

/// The worker count to use for `requested` (at least 1) under the open-file limit `limit`
/// with `reserved` descriptors kept, and why it was changed or looks unwise: more than 4
/// per core is kept but warned about, and a count that the available memory or the limit
/// cannot hold is lowered to what they can.
pub fn check_workers(
    requested: usize,
    limit: Option<usize>,
    reserved: usize,
) -> (usize, Option<String>) {
    if let Some(cap) = batch::memory_worker_cap()
        && requested > cap
    {
        let (workers, _) = fit_to_files(cap, limit, reserved);
        return (
            workers,
            Some(format!(
                "{requested} workers need about {} MiB but only enough memory for {cap} is \
                 available; using {workers}",
                (requested as u64).saturating_mul(batch::MEMORY_PER_WORKER >> 20)
            )),
        );
    }
    if let (workers, Some(limit)) = fit_to_files(requested, limit, reserved) {
        return (
            workers,
            Some(format!(
                "{requested} workers need about {} open files but the limit is {limit} \
                 (ulimit -n); using {workers}",
                crate::open_files::DESCRIPTORS_AT_REST
                    .saturating_add(reserved)
                    .saturating_add(
                        requested.saturating_mul(crate::open_files::DESCRIPTORS_PER_WORKER)
                    )
            )),
        );
    }
    let cores = crate::host::available_cores();
    if requested > MAX_WORKERS_PER_CORE * cores {
        return (
            requested,
            Some(format!(
                "{requested} workers on {cores} cores: past {MAX_WORKERS_PER_CORE} per core \
                 they only add contention"
            )),
        );
    }
    (requested, None)
}

/// `workers` lowered to what the open-file limit holds ([`crate::open_files`]), and the
/// limit when it lowered them.
fn fit_to_files(workers: usize, limit: Option<usize>, reserved: usize) -> (usize, Option<usize>) {
    match limit.map(|limit| (limit, crate::open_files::workers_that_fit(limit, reserved))) {
        Some((limit, fits)) if fits < workers => (fits, Some(limit)),
        _ => (workers, None),
    }
}

/// The `--analysis-seconds` value parser: 0 (the whole file) or a finite number of
/// seconds of at least [`Sampling::MIN_SECONDS`].
pub fn parse_analysis_seconds(s: &str) -> Result<f64, String> {
    let secs: f64 = s.parse().map_err(|e| format!("not a number ({e})"))?;
    if secs == 0.0 || (secs.is_finite() && secs >= Sampling::MIN_SECONDS) {
        Ok(secs)
    } else {
        Err(format!(
            "must be 0 (the whole file) or at least {} seconds",
            Sampling::MIN_SECONDS
        ))
    }
}

/// The `--segments` value parser: a whole number from 1 to [`Sampling::MAX_SEGMENTS`].
pub fn parse_segments(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=Sampling::MAX_SEGMENTS).contains(&n) => Ok(n),
        Ok(n) => Err(format!(
            "must be from 1 to {} (got {n})",
            Sampling::MAX_SEGMENTS
        )),
        Err(e) => Err(format!("not a whole number ({e})")),
    }
}

/// What a long file's analysis decodes, from `base` (the default, or the command's
/// flags) changed by `seconds` (0: the whole file) and `segments`. Seconds alone mean one
/// segment of that length; a count alone changes the base's count; a count with nothing
/// sampled is refused.
pub fn sampling(
    base: Option<Sampling>,
    seconds: Option<f64>,
    segments: Option<usize>,
) -> Result<Option<Sampling>, String> {
    // Seconds given without a count mean one segment of that length: `analysis-seconds=60`
    // reads as "60 s", not as the default count of 60 s segments.
    let (seconds, default_count) = match seconds {
        Some(0.0) => (None, 1),
        Some(s) => (Some(s), 1),
        None => (base.map(|b| b.seconds), base.map_or(1, |b| b.segments)),
    };
    match (seconds, segments) {
        (None, Some(_)) => {
            Err("segments need a sampled analysis (analysis seconds above 0)".to_string())
        }
        (None, None) => Ok(None),
        (Some(seconds), segments) => Ok(Some(Sampling {
            seconds,
            segments: segments.unwrap_or(default_count),
        })),
    }
}

/// What is computed for each file: `tempo`, with the key (`tempo,key`, the default) and
/// the loudness (`loudness`, which decodes every file whole) beside it. Tempo is always
/// computed: it decides whether a row is `ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptors {
    /// The key beside the tempo.
    pub key: bool,
    /// The loudness (EBU R128, ReplayGain 2.0) beside the tempo.
    pub loudness: bool,
}

impl Default for Descriptors {
    fn default() -> Self {
        let config = AnalyzerConfig::default();
        Descriptors {
            key: config.key,
            loudness: config.loudness,
        }
    }
}

impl Descriptors {
    /// The names, comma-separated in a fixed order, as the flag takes them: `tempo`,
    /// `tempo,key`, `tempo,loudness` or `tempo,key,loudness`.
    pub fn names(self) -> &'static str {
        match (self.key, self.loudness) {
            (false, false) => "tempo",
            (true, false) => "tempo,key",
            (false, true) => "tempo,loudness",
            (true, true) => "tempo,key,loudness",
        }
    }
}

impl std::str::FromStr for Descriptors {
    type Err = String;

    /// `tempo` with any of `key` and `loudness`, in any order; each name once.
    fn from_str(text: &str) -> Result<Self, String> {
        let (mut tempo, mut key, mut loudness) = (false, false, false);
        for name in text.split(',').map(str::trim) {
            let seen = match name {
                "tempo" => std::mem::replace(&mut tempo, true),
                "key" => std::mem::replace(&mut key, true),
                "loudness" => std::mem::replace(&mut loudness, true),
                // An empty list (`--descriptors ""`, a request's `[]`) or `tempo,,key`.
                "" => {
                    return Err("an empty descriptor: name tempo, and key or loudness \
                                beside it, separated by commas"
                        .to_string());
                }
                other => {
                    return Err(format!(
                        "unknown descriptor {other:?} (the descriptors are tempo, key and \
                         loudness)"
                    ));
                }
            };
            if seen {
                return Err(format!("{name} is named twice"));
            }
        }
        if !tempo {
            return Err(
                "tempo must be among the descriptors: it decides a row's status \
                        (say tempo,key for both)"
                    .to_string(),
            );
        }
        Ok(Descriptors { key, loudness })
    }
}

/// What a file's analysis decodes and computes; every command that analyses takes these
/// flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SamplingArgs {
    /// Decode only segments of SECS seconds of a long file, reached by seeking; 0 decodes
    /// the whole file. Files shorter than (segments + 1) x SECS are analysed whole
    /// [default: 4 segments of 15 s; SECS alone means one segment].
    #[arg(long, value_name = "SECS", value_parser = parse_analysis_seconds)]
    pub analysis_seconds: Option<f64>,
    /// How many segments are decoded, spread evenly over the file (leaving out the intro
    /// and outro) [default: 4, or 1 with --analysis-seconds].
    #[arg(long, value_name = "K", value_parser = parse_segments)]
    pub segments: Option<usize>,
    /// Analyse every file whole, as before sampling (the same as --analysis-seconds 0).
    #[arg(long, conflicts_with_all = ["analysis_seconds", "segments"])]
    pub full: bool,
    /// What is computed: `tempo`, plus `key` and/or `loudness` (EBU R128 and ReplayGain
    /// 2.0; it decodes every file whole), e.g. `tempo,key,loudness` [default: tempo,key].
    #[arg(long, value_name = "LIST")]
    pub descriptors: Option<Descriptors>,
    /// Which note of a 6/8 or 12/8 bar (a jig, a 6/8 ballad) the tempo counts: `quarter`,
    /// as the MIDI tempo does, or `dotted-quarter`, the beat a listener taps; each has its
    /// own model, and `dotted-quarter` reads more binary music in 3/4 as 6/8
    /// [default: quarter].
    #[arg(long, value_name = "NOTE")]
    pub compound_beat: Option<CompoundBeat>,
}

impl SamplingArgs {
    /// The sampling these flags ask for, from the analyzer's default.
    pub fn sampling(&self) -> Result<Option<Sampling>, String> {
        if self.full {
            return Ok(None);
        }
        sampling(
            AnalyzerConfig::default().sampling,
            self.analysis_seconds,
            self.segments,
        )
        .map_err(|e| format!("--segments: {e}"))
    }

    /// The flags again, for a child process that must analyse alike.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if self.full {
            args.push("--full".to_string());
        }
        if let Some(s) = self.analysis_seconds {
            args.extend(["--analysis-seconds".to_string(), s.to_string()]);
        }
        if let Some(k) = self.segments {
            args.extend(["--segments".to_string(), k.to_string()]);
        }
        if let Some(d) = self.descriptors {
            args.extend(["--descriptors".to_string(), d.names().to_string()]);
        }
        if let Some(b) = self.compound_beat {
            args.extend(["--compound-beat".to_string(), b.to_string()]);
        }
        args
    }

    /// The descriptors asked for, the default where the flag is not given.
    pub fn descriptors(&self) -> Descriptors {
        self.descriptors.unwrap_or_default()
    }
}

/// How a batch of files runs, for the commands that run one over paths (`analyze`, `tag`):
/// workers, the per-file time limit and the progress display.
#[derive(Debug, Clone, clap::Args)]
pub struct BatchArgs {
    /// Files analysed at once [default: one per core, fewer if memory is short]. 1 runs
    /// the sequential reference path.
    #[arg(long, value_name = "N", value_parser = parse_workers)]
    pub workers: Option<usize>,
    /// Give up on a file after SECS seconds; its row says `timeout`.
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
    /// Progress on stderr: `auto` draws a bar only on a terminal; `jsonl` writes one JSON
    /// object per line.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

impl BatchArgs {
    /// The run options these flags ask for, with `schedule` and a fresh cancel flag.
    pub fn options(&self, schedule: Schedule) -> RunOptions {
        RunOptions {
            workers: resolve_workers(self.workers),
            timeout: self.timeout,
            schedule,
            progress: self.progress,
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// The analyzer's flags every command that analyses takes: tempo range and sampling.
#[derive(Debug, Clone, clap::Args)]
pub struct AnalyzerArgs {
    /// Slowest tempo to report.
    #[arg(long, value_name = "BPM", default_value_t = AnalyzerConfig::default().min_bpm)]
    pub min_bpm: f64,
    /// Fastest tempo to report.
    #[arg(long, value_name = "BPM", default_value_t = AnalyzerConfig::default().max_bpm)]
    pub max_bpm: f64,
    /// Which part of a long file is decoded.
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

impl AnalyzerArgs {
    /// The analyzer these flags describe (a bad range is an error naming it).
    pub fn analyzer(&self) -> anyhow::Result<Analyzer> {
        analyzer(self.min_bpm, self.max_bpm, &self.sampling)
    }
}

/// The analyzer for the tempo range `min_bpm..=max_bpm`, decoding and computing what
/// `args` say.
pub fn analyzer(min_bpm: f64, max_bpm: f64, args: &SamplingArgs) -> anyhow::Result<Analyzer> {
    let sampling = args.sampling().map_err(|e| anyhow::anyhow!("{e}"))?;
    Analyzer::new(
        AnalyzerConfig::default()
            .with_bpm_range(min_bpm, max_bpm)
            .with_sampling(sampling)
            .with_key(args.descriptors().key)
            .with_loudness(args.descriptors().loudness)
            .with_compound_beat(args.compound_beat.unwrap_or_default()),
    )
    // The sampling was checked by its flags' parsers: what is left to refuse is the range.
    .map_err(|e| anyhow::anyhow!("invalid tempo range: {}", e.reason()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_counts_are_checked_against_the_host() {
        assert_eq!(check_workers(1, None, 0), (1, None));
        // Far too many: lowered to what memory holds, or kept with a contention warning.
        let (w, warning) = check_workers(10_000, None, 0);
        let warning = warning.expect("10000 workers are warned about");
        match batch::memory_worker_cap() {
            Some(cap) if cap < 10_000 => {
                assert_eq!(w, cap);
                assert!(warning.contains("memory"), "{warning}");
            }
            _ => {
                assert_eq!(w, 10_000);
                assert!(warning.contains("contention"), "{warning}");
            }
        }
        assert_eq!(resolve_workers(None), batch::default_workers());
        // `ulimit -n 16` holds 2 workers beside what every command keeps open, 1 beside a
        // connection too.
        if batch::memory_worker_cap().is_none_or(|cap| cap >= 8) {
            let (w, warning) = check_workers(8, Some(16), 0);
            assert_eq!(w, 2);
            assert!(warning.is_some_and(|w| w.contains("ulimit -n")));
            assert_eq!(check_workers(8, Some(16), 2).0, 1);
            assert_eq!(check_workers(8, Some(1024), 0), (8, None));
        }
        #[cfg(target_os = "linux")]
        assert!(crate::host::peak_rss_mb().is_some_and(|m| m > 0.0));
    }

    #[test]
    fn flag_values_are_checked() {
        assert!(parse_workers("0").is_err());
        assert!(parse_workers("-1").is_err());
        assert_eq!(parse_workers("3"), Ok(3));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("-1").is_err());
        assert!(parse_timeout("nan").is_err());
        assert!(parse_timeout("inf").is_err());
        assert_eq!(parse_timeout("0.5"), Ok(Duration::from_millis(500)));
        // Under a nanosecond it would be `0ns`, which `0` is refused as.
        assert!(parse_timeout("1e-10").is_err());
        assert_eq!(parse_timeout("1e-9"), Ok(Duration::from_nanos(1)));
        for bad in ["1e-300", "0.0001", "0", "nan", "3601", "x"] {
            assert!(parse_audio_length(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_audio_length("1"), Ok(1.0));
        assert_eq!(parse_audio_length("7.5"), Ok(7.5));
        assert_eq!(parse_timeout("31536000"), Ok(MAX_TIMEOUT));
        for absurd in ["31536000.5", "9.2e18", "1e19", "1e20"] {
            let err = parse_timeout(absurd).unwrap_err();
            assert_eq!(err, "must be at most 31536000 seconds (a year)", "{absurd}");
        }
        for bad in ["0/2", "3/2", "x", "1/0", "1/", "/2", "-1/2", "1/2/3"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_shard("2/3"), Ok(Shard { index: 2, count: 3 }));
    }

    #[test]
    fn an_empty_tempo_range_is_refused() {
        let whole = SamplingArgs::default();
        assert!(analyzer(50.0, 220.0, &whole).is_ok());
        let err = analyzer(200.0, 100.0, &whole).unwrap_err().to_string();
        assert!(err.starts_with("invalid tempo range: "), "{err}");
    }

    #[test]
    fn descriptors_need_tempo_and_name_each_once() {
        let key = |text: &str| text.parse::<Descriptors>().map(|d| d.key);
        assert_eq!(key("tempo,key"), Ok(true));
        assert_eq!(key("key, tempo"), Ok(true));
        assert_eq!(key("tempo"), Ok(false));
        for bad in [
            "key",
            "",
            "tempo,tempo",
            "tempo,mood",
            "tempo,key,key",
            "loudness",
            "key,loudness",
            "tempo,loudness,loudness",
        ] {
            assert!(key(bad).is_err(), "{bad}");
        }
        for empty in ["", "tempo,,key"] {
            let err = key(empty).unwrap_err();
            assert!(err.contains("an empty descriptor"), "{empty}: {err}");
        }
        assert_eq!(Descriptors::default().names(), "tempo,key");
        let args = SamplingArgs {
            descriptors: Some(Descriptors {
                key: false,
                loudness: false,
            }),
            ..SamplingArgs::default()
        };
        assert_eq!(args.to_args(), ["--descriptors", "tempo"]);
        assert!(!analyzer(50.0, 220.0, &args).unwrap().config().key);
        assert!(
            analyzer(50.0, 220.0, &SamplingArgs::default())
                .unwrap()
                .config()
                .key
        );
    }

    /// The compound beat reaches the analyzer and a child process; without the flag, quarters.
    #[test]
    fn the_compound_beat_is_passed_on() {
        let args = SamplingArgs {
            compound_beat: Some(CompoundBeat::DottedQuarter),
            ..SamplingArgs::default()
        };
        assert_eq!(args.to_args(), ["--compound-beat", "dotted-quarter"]);
        let config = analyzer(50.0, 220.0, &args).unwrap().config().clone();
        assert_eq!(config.compound_beat, CompoundBeat::DottedQuarter);
        let default = analyzer(50.0, 220.0, &SamplingArgs::default()).unwrap();
        assert_eq!(default.config().compound_beat, CompoundBeat::Quarter);
    }

    #[test]
    fn loudness_is_a_descriptor_named_in_a_fixed_order_and_off_by_default() {
        let parsed = |text: &str| text.parse::<Descriptors>().unwrap();
        for (text, key, names) in [
            ("tempo,key,loudness", true, "tempo,key,loudness"),
            ("loudness,tempo,key", true, "tempo,key,loudness"),
            ("tempo,loudness", false, "tempo,loudness"),
        ] {
            let descriptors = parsed(text);
            assert!(descriptors.loudness, "{text}");
            assert_eq!(descriptors.key, key, "{text}");
            assert_eq!(descriptors.names(), names);
            let args = SamplingArgs {
                descriptors: Some(descriptors),
                ..SamplingArgs::default()
            };
            assert_eq!(args.to_args(), ["--descriptors", names]);
            let config = analyzer(50.0, 220.0, &args).unwrap().config().clone();
            assert!(config.loudness && config.key == key, "{text}");
        }
        assert!(!parsed("tempo,key").loudness);
        assert!(
            !analyzer(50.0, 220.0, &SamplingArgs::default())
                .unwrap()
                .config()
                .loudness
        );
    }

    #[test]
    fn sampling_flags_are_checked_and_resolved() {
        for bad in ["-1", "5", "9.99", "nan", "inf", "x"] {
            assert!(parse_analysis_seconds(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_analysis_seconds("0"), Ok(0.0));
        assert_eq!(parse_analysis_seconds("30"), Ok(30.0));
        for bad in ["0", "33", "-1", "1.5"] {
            assert!(parse_segments(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_segments("3"), Ok(3));
        let three = Sampling {
            segments: 3,
            seconds: 30.0,
        };
        assert_eq!(sampling(None, None, None), Ok(None));
        assert_eq!(sampling(None, Some(0.0), None), Ok(None));
        assert_eq!(sampling(Some(three), Some(0.0), None), Ok(None));
        assert!(sampling(None, None, Some(3)).is_err());
        assert!(sampling(Some(three), Some(0.0), Some(2)).is_err());
        assert_eq!(sampling(None, Some(30.0), Some(3)), Ok(Some(three)));
        assert_eq!(
            sampling(None, Some(60.0), None),
            Ok(Some(Sampling {
                segments: 1,
                seconds: 60.0
            }))
        );
        assert_eq!(
            sampling(Some(three), None, Some(2)),
            Ok(Some(Sampling {
                segments: 2,
                seconds: 30.0
            }))
        );
        assert_eq!(
            sampling(Some(three), Some(30.0), None),
            Ok(Some(Sampling {
                segments: 1,
                seconds: 30.0
            }))
        );
        assert_eq!(
            SamplingArgs::default().sampling(),
            Ok(Some(Sampling::DEFAULT))
        );
        let two = SamplingArgs {
            segments: Some(2),
            ..SamplingArgs::default()
        };
        assert_eq!(
            two.sampling(),
            Ok(Some(Sampling {
                segments: 2,
                seconds: 15.0
            }))
        );
        let full = SamplingArgs {
            full: true,
            ..SamplingArgs::default()
        };
        assert_eq!(full.sampling(), Ok(None));
        let a = analyzer(
            50.0,
            220.0,
            &SamplingArgs {
                analysis_seconds: Some(30.0),
                segments: Some(3),
                full: false,
                descriptors: None,
                compound_beat: None,
            },
        )
        .unwrap();
        assert_eq!(a.config().sampling, Some(three));
    }
}
