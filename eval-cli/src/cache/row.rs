//! What is stored under a key, how it is sealed with a checksum, and what a stored row must
//! satisfy before it is used: a row that fails either is a miss, never a wrong answer.

use analyzer_core::{AnalyzerConfig, Error, ErrorKind, Stage};
use serde::{Deserialize, Serialize};

use super::key::CacheKey;
use crate::record::AnalyzeRecord;

/// Failures whose row may be stored: the tempo stage's verdict on audio that was decoded,
/// which depends on the decoded samples and the analyzer settings alone (both in the key).
/// Not `UnsupportedFormat` or `CorruptStream`: they are the decoder's verdict on what it
/// can read, which changes as the decoder learns formats while the key stays the same. Not
/// `Unreadable` (permissions and I/O errors come and go), not `TimedOut`/`Cancelled` (they
/// depend on the run), not `InvalidConfig` (not about the file).
pub fn is_deterministic(kind: ErrorKind) -> bool {
    CACHEABLE_KINDS.contains(&kind)
}

const CACHEABLE_KINDS: [ErrorKind; 2] = [ErrorKind::TooShort, ErrorKind::NoPulse];

const STAGES: [Stage; 9] = [
    Stage::Config,
    Stage::Open,
    Stage::Probe,
    Stage::Decode,
    Stage::Resample,
    Stage::Onset,
    Stage::Tempo,
    Stage::Key,
    Stage::Loudness,
];

/// A stored outcome: the row of an analysed file, or the failure a file always gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// One value per file, made and dropped at once: a box would add an allocation and save
// nothing.
#[allow(clippy::large_enum_variant)]
pub enum Stored {
    /// An `ok` row, its path empty.
    Row(AnalyzeRecord),
    /// A deterministic failure, as the parts of its [`Error`], and the row it makes (path
    /// empty): a file without a pulse keeps its audio, key and loudness cells.
    Failed {
        /// [`Stage::as_str`].
        stage: String,
        /// [`ErrorKind::as_str`].
        kind: String,
        /// The error's reason after `STAGE: KIND: `.
        detail: String,
        /// The failed row.
        record: AnalyzeRecord,
    },
}

impl Stored {
    /// What to store for a failed analysis and its row, if the failure is deterministic.
    pub fn failure(err: &Error, record: AnalyzeRecord) -> Option<Self> {
        if !is_deterministic(err.kind()) {
            return None;
        }
        let prefix = format!("{}: {}: ", err.stage(), err.kind());
        let reason = err.reason();
        let detail = reason.strip_prefix(&prefix)?.to_string();
        Some(Stored::Failed {
            stage: err.stage().as_str().to_string(),
            kind: err.kind().as_str().to_string(),
            detail,
            record,
        })
    }

    /// The outcome a hit stands for: the row (path empty) and, for a failure, the error
    /// the file gave; `None` for a stage or kind this build does not know or does not store.
    pub fn outcome(self) -> Option<(AnalyzeRecord, Option<Error>)> {
        match self {
            Stored::Row(record) => Some((record, None)),
            Stored::Failed {
                stage,
                kind,
                detail,
                record,
            } => {
                let stage = STAGES.into_iter().find(|s| s.as_str() == stage)?;
                let kind = CACHEABLE_KINDS.into_iter().find(|k| k.as_str() == kind)?;
                Some((record, Some(Error::new(kind, stage, detail))))
            }
        }
    }

    /// Whether this could be the outcome of an analysis under `limits`: a row's numbers
    /// are finite, in the bytes `analyze` writes them (three decimals) and in range (the
    /// tempo within the run's BPM range, confidence and share within 0..1), its status is
    /// `ok` and its path empty; a failure is one that is stored, and its row a failed row
    /// that begins with its reason. The reason otherwise.
    pub fn check(&self, limits: &RowLimits) -> Result<(), String> {
        match self {
            Stored::Row(row) => limits.check_row(row),
            Stored::Failed { .. } => match self.clone().outcome() {
                Some((row, Some(err))) => check_failed_row(&row, &err),
                _ => Err("a failure of a kind that is not stored".into()),
            },
        }
    }
}

/// A failed row of `err`: its status, its reason first, no tempo and no path; where the
/// audio was decoded (a file without a pulse), its audio cells as `ok` rows have them.
fn check_failed_row(row: &AnalyzeRecord, err: &Error) -> Result<(), String> {
    let status = analyzer_core::batch::Status::of_error(err.kind()).as_str();
    if row.status != status || !row.path.is_empty() {
        return Err(format!(
            "status {:?} or a path in a stored failure",
            row.status
        ));
    }
    if !row.error.starts_with(&err.reason()) {
        return Err(format!("a stored failure whose row says {:?}", row.error));
    }
    let tempo = [&row.bpm, &row.confidence, &row.alt_bpm, &row.alt_share];
    if tempo.iter().any(|cell| !cell.is_empty()) {
        return Err("a tempo in a stored failure".into());
    }
    if row.duration_s.is_empty() {
        return Ok(());
    }
    check_audio_cells(row)
}

/// The audio cells of a row that decoded: a length, a rate, a channel count and a codec,
/// written as `analyze` writes them.
fn check_audio_cells(row: &AnalyzeRecord) -> Result<(), String> {
    in_range("duration_s", &row.duration_s, &(0.0..=f64::MAX))?;
    positive::<u32>("sample_rate", &row.sample_rate)?;
    positive::<u16>("channels", &row.channels)?;
    if row.codec.is_empty() {
        return Err("no codec".into());
    }
    Ok(())
}

/// What a stored row must satisfy to be used by a run: the run's tempo range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowLimits {
    min_bpm: f64,
    max_bpm: f64,
}

/// Half a unit of the third decimal: a tempo at the end of the range may round past it.
const ROUNDING: f64 = 0.0005;

impl RowLimits {
    /// The limits of rows made with `config`.
    pub fn of(config: &AnalyzerConfig) -> Self {
        RowLimits {
            min_bpm: config.min_bpm,
            max_bpm: config.max_bpm,
        }
    }

    fn check_row(&self, row: &AnalyzeRecord) -> Result<(), String> {
        if row.status != "ok" || !row.path.is_empty() {
            return Err(format!("status {:?} or a path in a stored row", row.status));
        }
        let tempo = self.min_bpm - ROUNDING..=self.max_bpm + ROUNDING;
        let share = 0.0..=1.0;
        in_range("bpm", &row.bpm, &tempo)?;
        in_range("confidence", &row.confidence, &share)?;
        match (row.alt_bpm.is_empty(), row.alt_share.is_empty()) {
            (true, true) => {}
            (false, false) => {
                in_range("alt_bpm", &row.alt_bpm, &tempo)?;
                in_range("alt_share", &row.alt_share, &share)?;
            }
            _ => return Err("alt_bpm without alt_share or the reverse".into()),
        }
        check_audio_cells(row)
    }
}

/// `text` is a finite number with three decimals, as `analyze` writes it, within `range`.
fn in_range(field: &str, text: &str, range: &std::ops::RangeInclusive<f64>) -> Result<(), String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && format!("{v:.3}") == text && range.contains(&v) => Ok(()),
        _ => Err(format!("{field} {text:?} is not a number in {range:?}")),
    }
}

/// `text` is a positive integer as `to_string` writes it.
fn positive<T>(field: &str, text: &str) -> Result<(), String>
where
    T: std::str::FromStr + ToString + Default + PartialOrd,
{
    match text.parse::<T>() {
        Ok(v) if v > T::default() && v.to_string() == text => Ok(()),
        _ => Err(format!("{field} {text:?} is not a positive integer")),
    }
}

/// Length of the checksum in front of a stored value.
const CHECKSUM_LEN: usize = 32;

/// The bytes stored for `value` under `key`: the BLAKE3 hash of the key and the JSON,
/// then the JSON. The key is in the checksum, so a value read under another key (a key
/// damaged on disk, a row copied between settings) fails it too.
pub(super) fn seal(key: &CacheKey, value: &Stored) -> serde_json::Result<Vec<u8>> {
    let json = serde_json::to_vec(value)?;
    let mut bytes = Vec::with_capacity(CHECKSUM_LEN + json.len());
    bytes.extend_from_slice(&checksum(key, &json));
    bytes.extend_from_slice(&json);
    Ok(bytes)
}

/// The value `bytes` hold for `key`, or why they are not one [`seal`] wrote.
pub(super) fn unseal(key: &CacheKey, bytes: &[u8]) -> Result<Stored, String> {
    let (sum, json) = bytes
        .split_at_checked(CHECKSUM_LEN)
        .ok_or("shorter than its checksum")?;
    if sum != checksum(key, json) {
        return Err("its checksum does not match".into());
    }
    serde_json::from_slice(json).map_err(|err| format!("it does not parse: {err}"))
}

fn checksum(key: &CacheKey, json: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&key.bytes());
    hasher.update(json);
    *hasher.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::Path;

    use crate::cache::key::Settings;

    fn ok_row() -> AnalyzeRecord {
        AnalyzeRecord {
            path: String::new(),
            bpm: "120.000".into(),
            confidence: "0.870".into(),
            alt_bpm: "60.000".into(),
            alt_share: "0.100".into(),
            duration_s: "4.000".into(),
            sample_rate: "22050".into(),
            channels: "1".into(),
            codec: "pcm_s16le".into(),
            status: "ok".into(),
            error: String::new(),
            key: "A minor".into(),
            key_confidence: "0.640".into(),
            key_alt: "C major".into(),
            camelot: "8A".into(),
            loudness_lufs: "-14.20".into(),
            loudness_range_lu: "6.10".into(),
            true_peak_dbtp: "-0.50".into(),
            replaygain_track_gain_db: "-3.80".into(),
            replaygain_track_peak: "0.944061".into(),
            replaygain_album_gain_db: String::new(),
            replaygain_album_peak: String::new(),
        }
    }

    #[test]
    fn only_deterministic_failures_are_stored_and_they_round_trip() {
        for kind in [
            ErrorKind::TimedOut,
            ErrorKind::Cancelled,
            ErrorKind::Unreadable,
            ErrorKind::UnsupportedFormat,
            ErrorKind::CorruptStream,
            ErrorKind::InvalidConfig,
        ] {
            let err = Error::new(kind, Stage::Decode, "x");
            assert_eq!(Stored::failure(&err, AnalyzeRecord::default()), None);
        }
        for kind in CACHEABLE_KINDS {
            let err = Error::new(kind, Stage::Tempo, "why: with a colon");
            let row = failed_row(&err);
            let stored = Stored::failure(&err.clone().with_path(Path::new("f.mp3")), row.clone());
            let stored = stored.unwrap();
            assert_eq!(
                stored.check(&RowLimits::of(&AnalyzerConfig::default())),
                Ok(())
            );
            let (back_row, back) = stored.outcome().unwrap();
            let back = back.unwrap();
            assert_eq!(back_row, row);
            assert_eq!(back.reason(), err.reason());
            assert_eq!((back.kind(), back.stage()), (kind, Stage::Tempo));
        }
        let unknown = Stored::Failed {
            stage: "mystery".into(),
            kind: "no_pulse".into(),
            detail: String::new(),
            record: AnalyzeRecord::default(),
        };
        assert_eq!(unknown.outcome(), None, "unknown names are a miss");
        // A decode failure stored by an older build is not one this build serves.
        let old = Stored::Failed {
            stage: "probe".into(),
            kind: "unsupported_format".into(),
            detail: "no suitable format reader found".into(),
            record: AnalyzeRecord::default(),
        };
        assert!(
            old.check(&RowLimits::of(&AnalyzerConfig::default()))
                .is_err()
        );
    }

    /// A file without a pulse: the row keeps its audio, key and loudness cells.
    fn failed_row(err: &Error) -> AnalyzeRecord {
        AnalyzeRecord {
            bpm: String::new(),
            confidence: String::new(),
            alt_bpm: String::new(),
            alt_share: String::new(),
            status: "error".into(),
            error: format!("{}; a survived warning", err.reason()),
            ..ok_row()
        }
    }

    #[test]
    fn a_stored_failure_whose_row_is_not_its_row_fails_its_check() {
        let limits = RowLimits::of(&AnalyzerConfig::default());
        let err = Error::new(ErrorKind::NoPulse, Stage::Tempo, "flat");
        let bad: [fn(&mut AnalyzeRecord); 6] = [
            |r| r.bpm = "120.000".into(),
            |r| r.alt_share = "0.100".into(),
            |r| r.status = "ok".into(),
            |r| r.error = "tempo: too_short: flat".into(),
            |r| r.path = "elsewhere.wav".into(),
            |r| r.sample_rate = "0".into(),
        ];
        for (i, damage) in bad.iter().enumerate() {
            let mut row = failed_row(&err);
            damage(&mut row);
            let stored = Stored::failure(&err, row).unwrap();
            assert!(stored.check(&limits).is_err(), "case {i}");
        }
    }

    #[test]
    fn a_row_outside_the_settings_or_not_as_written_fails_its_check() {
        let limits = RowLimits::of(&AnalyzerConfig::default().with_bpm_range(60.0, 180.0));
        assert_eq!(Stored::Row(ok_row()).check(&limits), Ok(()));
        let edge = AnalyzeRecord {
            bpm: "180.000".into(),
            alt_bpm: "60.000".into(),
            ..ok_row()
        };
        assert_eq!(Stored::Row(edge).check(&limits), Ok(()));
        let bad: [fn(&mut AnalyzeRecord); 14] = [
            |r| r.bpm = "59.000".into(),
            |r| r.bpm = "181.000".into(),
            |r| r.bpm = "NaN".into(),
            |r| r.bpm = "120".into(),
            |r| r.bpm = "12O.000".into(),
            |r| r.confidence = "1.500".into(),
            |r| r.alt_bpm = "20.000".into(),
            |r| r.alt_share = String::new(),
            |r| r.duration_s = "inf".into(),
            |r| r.sample_rate = "0".into(),
            |r| r.channels = "01".into(),
            |r| r.codec = String::new(),
            |r| r.status = "error".into(),
            |r| r.path = "elsewhere.wav".into(),
        ];
        for (i, damage) in bad.iter().enumerate() {
            let mut row = ok_row();
            damage(&mut row);
            assert!(Stored::Row(row).check(&limits).is_err(), "case {i}");
        }
    }

    #[test]
    fn a_sealed_value_opens_only_intact_and_under_its_key() {
        let settings = Settings::new("x");
        let key = CacheKey::of_hash([1; 32], settings);
        let value = Stored::Row(ok_row());
        let bytes = seal(&key, &value).unwrap();
        assert_eq!(unseal(&key, &bytes), Ok(value));
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x04;
            assert!(unseal(&key, &damaged).is_err(), "byte {i}");
        }
        assert!(unseal(&key, &bytes[..10]).is_err());
        let other = CacheKey::of_hash([2; 32], settings);
        assert!(unseal(&other, &bytes).is_err(), "another key's row");
    }
}
