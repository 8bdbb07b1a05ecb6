//! The product's row: one [`AnalyzeRecord`] per file, the CSV line that `analyze`,
//! `merge`, the shards, `dist`, `serve` and the result cache all write, byte for byte the
//! same. It depends on the analyzer and the path cell only; every front end depends on
//! it, never the other way round.

use std::path::Path;

use analyzer_core::Analysis;
use analyzer_core::batch::Status;
use serde::{Deserialize, Serialize};

use crate::path_cell::path_cell;
use crate::report::export::{self, CsvLine, Exporter};

/// One line of the CSV: its fields are the columns, in order. Numbers have fixed decimals
/// so the bytes never depend on the run; failed rows leave the measurement cells empty.
/// Warnings of a stream that was damaged but analysed go in the `error` cell of an `ok` row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalyzeRecord {
    /// The file, as found or named, exactly ([`path_cell`]: UTF-8 names as they are,
    /// other bytes escaped as `\xNN`).
    pub path: String,
    /// The tempo, BPM, three decimals.
    pub bpm: String,
    /// The metrical model's probability that `bpm` is the beat (0..1), three decimals.
    pub confidence: String,
    /// The runner-up reading at another metrical level, BPM; empty when there is none.
    pub alt_bpm: String,
    /// Its probability; empty when there is none.
    pub alt_share: String,
    /// Seconds of audio, three decimals.
    pub duration_s: String,
    /// Sample rate of the file, Hz.
    pub sample_rate: String,
    /// Channels of the file.
    pub channels: String,
    /// The codec, as symphonia names it.
    pub codec: String,
    /// `ok`, `error` or `timeout`.
    pub status: String,
    /// Why the file failed; on an `ok` row the damage that was survived and why the key is
    /// empty (`no key: ...`), joined by `; `.
    pub error: String,
    /// The key (`A minor`, `C# major`: sharps only); empty when the file has none, when it
    /// failed, or when the key was not asked for.
    pub key: String,
    /// The key's share of the probability over the 24 keys (0..1), three decimals.
    pub key_confidence: String,
    /// The runner-up key.
    pub key_alt: String,
    /// The key's Camelot code (`8A`), as DJ software shows it.
    pub camelot: String,
}

impl AnalyzeRecord {
    /// The row of one file: its analysis, or the reason it has none.
    pub fn new(
        path: &Path,
        status: Status,
        analysis: Option<&Analysis>,
        error: Option<&str>,
    ) -> Self {
        let path = path_cell(path);
        let status = status.as_str().to_string();
        match analysis {
            Some(a) => {
                let mut notes = a.warnings.clone();
                let key = match &a.key {
                    Some(Ok(k)) => Some(k),
                    Some(Err(no_key)) => {
                        notes.push(no_key.to_string());
                        None
                    }
                    None => None,
                };
                AnalyzeRecord {
                    path,
                    bpm: format!("{:.3}", a.tempo.bpm),
                    confidence: format!("{:.3}", a.tempo.confidence),
                    alt_bpm: a
                        .tempo
                        .alternative
                        .map_or(String::new(), |c| format!("{:.3}", c.bpm)),
                    alt_share: a
                        .tempo
                        .alternative
                        .map_or(String::new(), |c| format!("{:.3}", c.strength)),
                    duration_s: format!("{:.3}", a.audio.duration_s),
                    sample_rate: a.audio.sample_rate.to_string(),
                    channels: a.audio.channels.to_string(),
                    codec: a.audio.codec.clone(),
                    status,
                    error: notes.join("; "),
                    key: key.map_or(String::new(), |k| k.key.to_string()),
                    key_confidence: key.map_or(String::new(), |k| format!("{:.3}", k.confidence)),
                    key_alt: key.map_or(String::new(), |k| k.alternative.to_string()),
                    camelot: key.map_or(String::new(), |k| k.key.camelot()),
                }
            }
            None => AnalyzeRecord {
                path,
                status,
                error: error.unwrap_or_default().to_string(),
                ..AnalyzeRecord::default()
            },
        }
    }
}

/// The CSV header line.
pub fn header() -> Vec<u8> {
    export::csv_header::<AnalyzeRecord>().expect("writing CSV to memory cannot fail")
}

/// The CSV line of one file (header order, newline included).
pub fn line(
    path: &Path,
    status: Status,
    analysis: Option<&Analysis>,
    error: Option<&str>,
) -> Vec<u8> {
    CsvLine
        .serialize(&AnalyzeRecord::new(path, status, analysis, error))
        .expect("writing CSV to memory cannot fail")
}
