//! The product's row: one [`AnalyzeRecord`] per file, the CSV line that `analyze`,
//! `merge`, the shards, `dist`, `serve` and the result cache all write, byte for byte the
//! same. It depends on the analyzer and the path cell only; every front end depends on
//! it, never the other way round.

use std::path::Path;

use analyzer_core::Analysis;
use analyzer_core::batch::Status;
use analyzer_core::loudness::{AlbumLoudness, Loudness, replaygain_db};
use serde::{Deserialize, Serialize};

use crate::path_cell::path_cell;
use crate::report::export::{self, CsvLine, Exporter};

/// One line of the CSV: its fields are the columns, in order. Numbers have fixed decimals
/// so the bytes never depend on the run; failed rows leave the measurement cells empty,
/// except a file without a tempo (no pulse), whose audio, key and loudness cells stand.
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
    /// empty (`no key: ...`), joined by `; `. A file without a tempo (`tempo: no_pulse: ...`)
    /// is a failed row that keeps its audio, key and loudness cells, and their notes follow.
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
    /// Integrated loudness (EBU R128 / BS.1770-4), LUFS, two decimals; empty when the
    /// loudness was not asked for, and for audio under the -70 LUFS gate (silence), whose
    /// `error` cell then says so.
    pub loudness_lufs: String,
    /// Loudness range (EBU Tech 3342), LU, two decimals.
    pub loudness_range_lu: String,
    /// The highest true peak of the channels, dBTP, two decimals; empty for digital silence.
    pub true_peak_dbtp: String,
    /// ReplayGain 2.0 track gain: -18 LUFS minus the integrated loudness, dB, two decimals.
    pub replaygain_track_gain_db: String,
    /// ReplayGain track peak: the true peak, linear (1.0 is full scale), six decimals.
    pub replaygain_track_peak: String,
    /// ReplayGain 2.0 album gain of the file's folder, gated over all blocks of all its
    /// files, dB, two decimals; filled only by `analyze --album`.
    pub replaygain_album_gain_db: String,
    /// The highest true peak of the folder's files, linear, six decimals (`--album` only).
    pub replaygain_album_peak: String,
}

/// A decibel cell: two decimals, never `-0.00`.
fn db_cell(value: f64) -> String {
    fixed_cell(value, 2)
}

/// A linear peak cell: six decimals.
fn peak_cell(value: f64) -> String {
    fixed_cell(value, 6)
}

/// `value` with `places` decimals; a value that rounds to zero is written without a sign,
/// so a row's bytes do not depend on which side of zero a rounding error fell.
fn fixed_cell(value: f64, places: usize) -> String {
    let cell = format!("{value:.places$}");
    match cell.strip_prefix('-') {
        Some(digits) if digits.bytes().all(|b| b == b'0' || b == b'.') => digits.to_string(),
        _ => cell,
    }
}

/// Why an `ok` row measured with loudness has an empty loudness cell: silence.
const SILENCE_NOTE: &str =
    "no loudness: every block is under the -70 LUFS gate (silence, or nearly)";

/// A true peak at or over which gated-out audio is not near silence: a 400 ms block
/// holding even one sample that loud in a weighed channel reads over the -70 LUFS gate, at
/// any rate up to 768 kHz.
const UNHEARD_PEAK_DBTP: f64 = -6.0;

/// Why an `ok` row measured with loudness has an empty loudness cell: no 400 ms gating block
/// fits in the audio, whatever its level.
const TOO_SHORT_NOTE: &str = "no loudness: shorter than one 400 ms gating block";

impl AnalyzeRecord {
    /// The track's loudness cells (left empty without a measurement); a silent file's
    /// reason goes to `notes`.
    fn with_loudness(mut self, loudness: Option<&Loudness>, notes: &mut Vec<String>) -> Self {
        let Some(loudness) = loudness else {
            return self;
        };
        match loudness.integrated_lufs {
            Some(lufs) => {
                self.loudness_lufs = db_cell(lufs);
                self.replaygain_track_gain_db = db_cell(replaygain_db(lufs));
            }
            // Not `blocks`: `analyze` without `--album` drops them.
            None if loudness.block_count == 0 => notes.push(TOO_SHORT_NOTE.to_string()),
            // A peak no near-silent block can hide: the sound is where BS.1770 does not
            // listen (a file of one LFE channel read as "silence, or nearly").
            None => match loudness
                .true_peak_dbtp()
                .filter(|&peak| peak >= UNHEARD_PEAK_DBTP)
            {
                Some(peak) => notes.push(format!(
                    "no loudness: every block is under the -70 LUFS gate, though the true \
                     peak is {peak:.2} dBTP: the sound is in channels BS.1770 leaves out \
                     (LFE)"
                )),
                None => notes.push(SILENCE_NOTE.to_string()),
            },
        }
        // No range where nothing was measured: `0.00` read as a measurement.
        if loudness.integrated_lufs.is_some() {
            self.loudness_range_lu = db_cell(loudness.range_lu);
        }
        self.true_peak_dbtp = loudness.true_peak_dbtp().map_or(String::new(), db_cell);
        self.replaygain_track_peak = peak_cell(loudness.true_peak);
        self
    }

    fn with_notes(mut self, notes: &[String]) -> Self {
        self.error = notes.join("; ");
        self
    }

    /// The row with its folder's album cells filled in (an `ok` row measured with
    /// loudness; others keep them empty).
    pub fn with_album(mut self, album: &AlbumLoudness) -> Self {
        if self.replaygain_track_peak.is_empty() {
            return self;
        }
        self.replaygain_album_gain_db = album.gain_db().map_or(String::new(), db_cell);
        self.replaygain_album_peak = peak_cell(album.true_peak);
        self
    }

    /// The row of one file: its analysis, or the reason it has none. An analysis whose
    /// tempo stage found none (no pulse, too short) makes a failed row with its tempo cells
    /// empty, the verdict first in `error`, and the rest of the analysis (the audio, the
    /// key, the loudness) filled in: the status is the verdict's, whatever `status` says.
    pub fn new(
        path: &Path,
        status: Status,
        analysis: Option<&Analysis>,
        error: Option<&str>,
    ) -> Self {
        let path = path_cell(path);
        let Some(a) = analysis else {
            return AnalyzeRecord {
                path,
                status: status.as_str().to_string(),
                error: error.unwrap_or_default().to_string(),
                ..AnalyzeRecord::default()
            };
        };
        let (tempo, status, mut notes) = match &a.tempo {
            Ok(tempo) => (Some(tempo), status, Vec::new()),
            Err(verdict) => (
                None,
                Status::of_error(verdict.kind()),
                vec![verdict.reason()],
            ),
        };
        notes.extend(a.warnings.iter().cloned());
        let key = match &a.key {
            Some(Ok(k)) => Some(k),
            Some(Err(no_key)) => {
                notes.push(no_key.to_string());
                None
            }
            None => None,
        };
        let alternative = tempo.and_then(|t| t.alternative);
        let cell = |value: Option<f64>| value.map_or(String::new(), |v| format!("{v:.3}"));
        AnalyzeRecord {
            path,
            bpm: cell(tempo.map(|t| t.bpm)),
            confidence: cell(tempo.map(|t| t.confidence)),
            alt_bpm: cell(alternative.map(|c| c.bpm)),
            alt_share: cell(alternative.map(|c| c.strength)),
            duration_s: format!("{:.3}", a.audio.duration_s),
            sample_rate: a.audio.sample_rate.to_string(),
            channels: a.audio.channels.to_string(),
            codec: a.audio.codec.clone(),
            status: status.as_str().to_string(),
            key: key.map_or(String::new(), |k| k.key.to_string()),
            key_confidence: key.map_or(String::new(), |k| format!("{:.3}", k.confidence)),
            key_alt: key.map_or(String::new(), |k| k.alternative.to_string()),
            camelot: key.map_or(String::new(), |k| k.key.camelot()),
            ..AnalyzeRecord::default()
        }
        .with_loudness(a.loudness.as_ref(), &mut notes)
        .with_notes(&notes)
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

/// A row read back from a rows file (a resumed `--out`, a shard part): its record, when
/// the row is byte for byte the line this program writes for its cells (line end
/// included), else `None`: a row whose bytes changed since (one that is not UTF-8, read
/// lossily; a cell quoted by a spreadsheet) is no row of this program's to keep. The cells
/// are text, so a value changed by hand is not seen. Cells that make no record are the
/// error.
pub fn read_back(fields: &[String], line: &[u8]) -> Result<Option<AnalyzeRecord>, csv::Error> {
    let record: AnalyzeRecord = csv::StringRecord::from(fields.to_vec()).deserialize(None)?;
    let written = CsvLine
        .serialize(&record)
        .expect("writing CSV to memory cannot fail");
    Ok((written == line).then_some(record))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loudness(integrated_lufs: Option<f64>, true_peak: f64) -> Loudness {
        Loudness {
            integrated_lufs,
            range_lu: 6.104,
            true_peak,
            blocks: Default::default(),
            block_count: 1,
        }
    }

    fn cells(record: &AnalyzeRecord) -> [&str; 7] {
        [
            &record.loudness_lufs,
            &record.loudness_range_lu,
            &record.true_peak_dbtp,
            &record.replaygain_track_gain_db,
            &record.replaygain_track_peak,
            &record.replaygain_album_gain_db,
            &record.replaygain_album_peak,
        ]
    }

    #[test]
    fn loudness_cells_have_fixed_decimals_and_no_negative_zero() {
        let mut notes = Vec::new();
        let record =
            AnalyzeRecord::default().with_loudness(Some(&loudness(Some(-17.996), 0.5)), &mut notes);
        assert_eq!(
            cells(&record),
            ["-18.00", "6.10", "-6.02", "0.00", "0.500000", "", ""]
        );
        assert!(notes.is_empty());
        assert_eq!(fixed_cell(-0.004, 2), "0.00");
        assert_eq!(fixed_cell(-0.0, 6), "0.000000");
        assert_eq!(fixed_cell(-0.005_1, 2), "-0.01");
    }

    /// The loudness of `seconds` of a mono sine at `amplitude`, measured.
    fn measured(seconds: f64, amplitude: f32) -> Loudness {
        let rate = 48_000;
        let samples: Vec<f32> = (0..(seconds * f64::from(rate)) as usize)
            .map(|i| amplitude * (i as f32 * 0.05).sin())
            .collect();
        let mut meter = analyzer_core::loudness::LoudnessMeter::new(1, rate).unwrap();
        meter.push(&samples).unwrap();
        meter.finish().unwrap()
    }

    #[test]
    fn silence_leaves_the_loudness_empty_with_a_note_never_minus_infinity() {
        let silence = measured(1.0, 0.0);
        let mut notes = vec!["damaged".to_string()];
        let record = AnalyzeRecord::default()
            .with_loudness(Some(&silence), &mut notes)
            .with_notes(&notes);
        assert_eq!(cells(&record)[0], "");
        // No range either: `0.00` read as a measurement.
        assert_eq!(cells(&record)[1], "");
        assert_eq!(cells(&record)[4], "0.000000");
        assert_eq!(record.error, format!("damaged; {SILENCE_NOTE}"));
        let album = AlbumLoudness::of_tracks([&silence]);
        assert_eq!(
            record.clone().with_album(&album).replaygain_album_gain_db,
            ""
        );
        // Without `--album`, `analyze` drops the blocks; the note must not change.
        let dropped = Loudness {
            blocks: Default::default(),
            ..silence
        };
        let mut notes = vec!["damaged".to_string()];
        let without_blocks = AnalyzeRecord::default()
            .with_loudness(Some(&dropped), &mut notes)
            .with_notes(&notes);
        assert_eq!(without_blocks, record);
    }

    /// Every block under the gate with a true peak no near-silent block can hold: the
    /// sound is in channels BS.1770 leaves out (a file of one LFE channel was "silence,
    /// or nearly"). A quiet peak keeps the silence note.
    #[test]
    fn a_loud_peak_in_gated_out_audio_is_not_called_silence() {
        let gated = |true_peak: f64| Loudness {
            integrated_lufs: None,
            range_lu: 0.0,
            true_peak,
            blocks: Default::default(),
            block_count: 10,
        };
        let note = |loudness: &Loudness| {
            let mut notes = Vec::new();
            AnalyzeRecord::default()
                .with_loudness(Some(loudness), &mut notes)
                .with_notes(&notes)
                .error
        };
        let lfe = note(&gated(0.8));
        assert!(
            lfe.contains("true peak is -1.94 dBTP") && lfe.contains("(LFE)"),
            "{lfe}"
        );
        assert_eq!(note(&gated(0.001)), SILENCE_NOTE);
    }

    /// 0.3 s of a loud tone holds no 400 ms block: it is too short, not silent.
    #[test]
    fn audio_shorter_than_a_block_is_not_called_silence() {
        let short = measured(0.3, 0.5);
        assert!(short.integrated_lufs.is_none() && short.true_peak > 0.4);
        let mut notes = Vec::new();
        let record = AnalyzeRecord::default()
            .with_loudness(Some(&short), &mut notes)
            .with_notes(&notes);
        assert_eq!(record.error, TOO_SHORT_NOTE);
    }

    #[test]
    fn album_cells_only_on_rows_measured_with_loudness() {
        let album = AlbumLoudness {
            integrated_lufs: Some(-12.0),
            true_peak: 0.9,
        };
        let measured = AnalyzeRecord::default()
            .with_loudness(Some(&loudness(Some(-14.0), 0.5)), &mut Vec::new())
            .with_album(&album);
        assert_eq!(
            cells(&measured)[5..],
            ["-6.00".to_string(), "0.900000".to_string()]
        );
        let without = AnalyzeRecord::default()
            .with_loudness(None, &mut Vec::new())
            .with_album(&album);
        assert_eq!(cells(&without), [""; 7]);
    }
}
