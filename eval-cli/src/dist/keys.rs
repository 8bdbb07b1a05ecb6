//! The job's layout on the broker: the key names of a job and of each of its runs, the run
//! id, the manifest a second `submit` and every worker must agree with, the stream entry ids
//! and the script that stores a row. Every command reads the job through these.

use std::io::Read;
use std::path::{Path, PathBuf};

use analyzer_core::{Analyzer, AnalyzerConfig, CompoundBeat, Sampling};
use serde::{Deserialize, Serialize};

use crate::shard;

use super::error::{DistError, Result};

/// The consumer group every worker reads through.
pub(super) const GROUP: &str = "workers";
/// Deliveries after which an entry is given up: each one killed its worker.
pub const MAX_DELIVERIES: usize = 3;
/// Entries added to the stream per round trip by `submit`, and rows read per round trip by
/// `merge`.
pub(super) const CHUNK: usize = 1000;
/// How far back `dist status` looks to measure the rate (and how long store times are kept).
pub(super) const RATE_WINDOW_MS: u64 = 60_000;

/// What a job is: a second `submit` or a worker must agree with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The run id (32 hex digits) drawn by the `submit` that created the job. The keys of
    /// the job's stream and rows include it, so a job submitted again under the same name
    /// after the broker lost it never meets the rows of the old run.
    pub run: String,
    /// The analyzer's version (the crate version of this build).
    pub version: String,
    /// The analyzer's fingerprint (`AnalyzerConfig::fingerprint`: version, settings, model).
    pub settings: String,
    /// The analyzer settings themselves, so that a worker started without analyzer flags
    /// analyses with the job's.
    pub analyzer: JobAnalyzer,
    /// Files queued, one stream entry each.
    pub files: usize,
    /// Inputs that could not be walked: rows written by `submit`, after the files'.
    pub walk_errors: usize,
    /// A hash of the sorted file list ([`shard::list_hash`]).
    pub list_hash: String,
    /// The folder `submit` ran in, when a file's path is relative: a worker reads such a
    /// file in that folder ([`Manifest::on_submitter`]) whatever its own working folder,
    /// and its row keeps the path as given, as `analyze` run there writes it. Absent when
    /// every path is absolute (and from manifests written before it existed), so a job of
    /// absolute paths is the same job whichever folder it is submitted from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_from: Option<PathBuf>,
}

impl Manifest {
    /// The manifest of a new job; `submitted_from` is the folder relative `files` are in.
    pub(super) fn new(
        analyzer: &Analyzer,
        files: &[PathBuf],
        walk_errors: usize,
        submitted_from: Option<PathBuf>,
    ) -> Result<Self> {
        Ok(Manifest {
            submitted_from,
            run: new_run_id()?,
            version: env!("CARGO_PKG_VERSION").to_string(),
            settings: settings_of(analyzer),
            analyzer: JobAnalyzer::of(analyzer.config()),
            files: files.len(),
            walk_errors,
            list_hash: shard::list_hash(files),
        })
    }

    /// Whether `other` is the same job whatever its run id: submitting it again is a no-op.
    pub(super) fn same_job(&self, other: &Manifest) -> bool {
        let mut ours = self.clone();
        ours.run.clone_from(&other.run);
        ours == *other
    }

    /// Fails unless `analyzer` is the version and settings of the job `job` (this manifest's):
    /// a worker never mixes its rows with another analyzer's.
    pub(super) fn check_worker(&self, job: &str, analyzer: &Analyzer) -> Result<()> {
        let version = env!("CARGO_PKG_VERSION");
        if self.version == version && self.settings == settings_of(analyzer) {
            return Ok(());
        }
        Err(DistError::SettingsMismatch {
            job: job.to_string(),
            job_version: self.version.clone(),
            job_settings: self.settings.clone(),
            version: version.to_string(),
            settings: settings_of(analyzer),
        })
    }

    /// Rows of the complete job.
    pub(super) fn total(&self) -> usize {
        self.files + self.walk_errors
    }

    /// Where a submitted path is on the submitter's machine: a relative one in the folder
    /// `submit` ran in, an absolute one (or any, for a job without that folder) as it is.
    pub(super) fn on_submitter(&self, submitted: &Path) -> PathBuf {
        on_submitter(self.submitted_from.as_deref(), submitted)
    }
}

/// [`Manifest::on_submitter`] of a job submitted from `submitted_from`.
pub(super) fn on_submitter(submitted_from: Option<&Path>, submitted: &Path) -> PathBuf {
    match submitted_from {
        Some(folder) if submitted.is_relative() => folder.join(submitted),
        _ => submitted.to_path_buf(),
    }
}

/// 128 random bits from the OS, in hex: no two submits draw the same run id.
pub(super) fn new_run_id() -> Result<String> {
    let mut bits = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bits))
        .map_err(DistError::RunId)?;
    Ok(bits.iter().map(|b| format!("{b:02x}")).collect())
}

/// The settings of a job's analyzer that its flags can set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobAnalyzer {
    /// Slowest tempo reported, BPM.
    pub min_bpm: f64,
    /// Fastest tempo reported, BPM.
    pub max_bpm: f64,
    /// Segments decoded and their seconds; `None` decodes files whole.
    pub sampling: Option<(usize, f64)>,
    /// Whether the key is estimated beside the tempo (the job's descriptor set).
    pub key: bool,
    /// Whether the loudness is measured beside the tempo (the job's descriptor set);
    /// absent from manifests written before it existed, which did not measure it.
    #[serde(default)]
    pub loudness: bool,
    /// Which note of a compound meter is the beat (`quarter` or `dotted-quarter`); absent
    /// from manifests written before the choice existed, which counted quarters.
    #[serde(default, with = "compound_beat_name")]
    pub compound_beat: CompoundBeat,
}

/// A [`CompoundBeat`] stored by its name.
mod compound_beat_name {
    use analyzer_core::CompoundBeat;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(beat: &CompoundBeat, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(beat.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<CompoundBeat, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

impl JobAnalyzer {
    fn of(config: &AnalyzerConfig) -> Self {
        JobAnalyzer {
            min_bpm: config.min_bpm,
            max_bpm: config.max_bpm,
            sampling: config.sampling.map(|s| (s.segments, s.seconds)),
            key: config.key,
            loudness: config.loudness,
            compound_beat: config.compound_beat,
        }
    }

    /// The analyzer of these settings (the defaults for the rest, as the flags give them).
    pub fn analyzer(&self) -> Result<Analyzer> {
        let sampling = self
            .sampling
            .map(|(segments, seconds)| Sampling { segments, seconds });
        Analyzer::new(
            AnalyzerConfig::default()
                .with_bpm_range(self.min_bpm, self.max_bpm)
                .with_sampling(sampling)
                .with_key(self.key)
                .with_loudness(self.loudness)
                .with_compound_beat(self.compound_beat),
        )
        .map_err(|e| DistError::ManifestSettings(e.to_string()))
    }
}

fn settings_of(analyzer: &Analyzer) -> String {
    analyzer.fingerprint()
}

/// The key of a job's manifest, the one key outside its run (it says which run is current).
pub(super) fn manifest_key(job: &str) -> String {
    format!("tempo-scale:job:{job}:manifest")
}

/// The Redis keys of one run of a job.
pub(super) struct Keys {
    pub(super) manifest: String,
    /// The run these keys belong to.
    pub(super) run: String,
    pub(super) stream: String,
    pub(super) rows: String,
    pub(super) states: String,
    pub(super) finished_at: String,
}

impl Keys {
    pub(super) fn new(job: &str, run: &str) -> Self {
        let prefix = format!("tempo-scale:job:{job}:run:{run}:");
        Keys {
            manifest: manifest_key(job),
            run: run.to_string(),
            stream: format!("{prefix}stream"),
            rows: format!("{prefix}rows"),
            states: format!("{prefix}states"),
            finished_at: format!("{prefix}finished_at"),
        }
    }
}

/// Stores a row and acknowledges its entry, only while the manifest (KEYS[1]) names the
/// slot's run (ARGV[1]): a worker that held a row across a broker restart and a new submit
/// of the job stores nothing (the script returns 0). In one script, so atomic. `HSETNX`
/// keeps the first row of an index, `XACK` is idempotent: repeating it is harmless. The
/// store times (KEYS[5]) are kept for the last RATE_WINDOW only (ARGV[8] is its start).
pub(super) const STORE_SCRIPT: &str = r"
local manifest = redis.call('GET', KEYS[1])
if not manifest or cjson.decode(manifest).run ~= ARGV[1] then return 0 end
redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3])
redis.call('HSETNX', KEYS[3], ARGV[2], ARGV[4])
redis.call('XACK', KEYS[4], ARGV[5], ARGV[6])
redis.call('ZADD', KEYS[5], ARGV[7], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. ARGV[8])
return 1
";

/// Milliseconds since the epoch by this machine's clock: the store times the rate is
/// measured from (0 for a clock before 1970).
pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The last id of the first round: `submit` queues input index i as `0-(i+1)`, and a file
/// whose row was lost after it was stored again as `G-(i+1)`, G above every earlier entry.
pub(super) const FIRST_ROUND_END: (u64, u64) = (0, u64::MAX);

/// An entry id `MS-SEQ` as its two numbers, which order ids as the stream does.
pub(super) fn stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// An entry id as Redis writes it.
pub(super) fn id_text((ms, seq): (u64, u64)) -> String {
    format!("{ms}-{seq}")
}

/// The sequence number of an entry id `G-N` of `submit`: N, the input index plus one, in
/// every round.
pub(super) fn entry_seq(id: &str) -> Result<usize> {
    stream_id(id)
        .and_then(|(_, seq)| usize::try_from(seq).ok())
        .filter(|&seq| seq >= 1)
        .ok_or_else(|| DistError::ForeignEntry { id: id.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker started without flags builds the job's analyzer from the manifest: the
    /// descriptor set, the range and the sampling come back as submitted.
    #[test]
    fn the_job_analyzer_round_trips_its_settings() {
        let submitted = AnalyzerConfig::default()
            .with_bpm_range(70.0, 180.0)
            .with_sampling(None)
            .with_key(false)
            .with_compound_beat(CompoundBeat::DottedQuarter);
        let stored = serde_json::to_string(&JobAnalyzer::of(&submitted)).unwrap();
        let read: JobAnalyzer = serde_json::from_str(&stored).unwrap();
        let rebuilt = read.analyzer().unwrap();
        assert_eq!(rebuilt.config(), &submitted);
        assert_eq!(rebuilt.fingerprint(), submitted.fingerprint());
        let with_key = JobAnalyzer::of(&AnalyzerConfig::default())
            .analyzer()
            .unwrap();
        assert!(with_key.config().key);
        let loud = AnalyzerConfig::default().with_loudness(true);
        let stored = serde_json::to_string(&JobAnalyzer::of(&loud)).unwrap();
        let read: JobAnalyzer = serde_json::from_str(&stored).unwrap();
        assert_eq!(read.analyzer().unwrap().config(), &loud);
        // A manifest written before the compound beat was a setting counted quarters.
        let mut old = serde_json::to_value(JobAnalyzer::of(&loud)).unwrap();
        assert_eq!(old["compound_beat"], "quarter");
        old.as_object_mut().unwrap().remove("compound_beat");
        let read: JobAnalyzer = serde_json::from_value(old).unwrap();
        assert_eq!(read.compound_beat, CompoundBeat::Quarter);
    }

    #[test]
    fn entry_ids_carry_the_index() {
        assert_eq!(entry_seq("0-1").unwrap(), 1);
        assert_eq!(entry_seq("0-1000").unwrap(), 1000);
        // Queued again after its row was lost: the same index in a later round.
        assert_eq!(entry_seq("2-1000").unwrap(), 1000);
        assert!(entry_seq("1700000000000-0").is_err());
        assert!(entry_seq("junk").is_err());
        assert!(stream_id("2-5") > stream_id("0-99"));
        assert!(Some(FIRST_ROUND_END) < stream_id("1-0"));
    }
}
