//! Shared inputs for the benchmarks and for CPU comparisons with other tools.
//!
//! A benchmark must time the analyzer, not the making of its input, so the inputs are
//! made once per run, before any timed loop: one seeded synthetic track
//! ([`synth_music::render`]) written as WAV and FLAC by `synth-music`, and encoded to MP3,
//! Ogg Vorbis and AAC/M4A by `lame`, `oggenc` and `ffmpeg` when those programs are on the
//! `PATH`. A missing encoder is a missing format ([`Inputs::file`] gives `None`, with the
//! reason in [`Inputs::skipped`]), never a failure: CI machines need not have them.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use synth_music::{Style, TrackSpec};

/// A container format the benchmarks decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// 16-bit PCM WAV, written by `synth-music`.
    Wav,
    /// 16-bit FLAC, written by `synth-music`.
    Flac,
    /// MP3 at 192 kbit/s CBR, encoded by `lame`.
    Mp3,
    /// Ogg Vorbis at quality 5 (about 160 kbit/s), encoded by `oggenc`.
    Ogg,
    /// AAC-LC in MP4 at 192 kbit/s, encoded by `ffmpeg`'s native encoder.
    M4a,
}

impl Format {
    /// Every format, in the order the benchmarks report them.
    pub const ALL: [Format; 5] = [
        Format::Wav,
        Format::Flac,
        Format::Mp3,
        Format::Ogg,
        Format::M4a,
    ];

    /// The file extension, which is also the name used in benchmark ids.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Wav => "wav",
            Format::Flac => "flac",
            Format::Mp3 => "mp3",
            Format::Ogg => "ogg",
            Format::M4a => "m4a",
        }
    }

    /// The external encoder this format needs, if any, and its arguments
    /// (`{in}` and `{out}` are replaced by the WAV source and the target).
    fn encoder(self) -> Option<(&'static str, &'static [&'static str])> {
        match self {
            Format::Wav | Format::Flac => None,
            Format::Mp3 => Some(("lame", &["--quiet", "-b", "192", "{in}", "{out}"])),
            Format::Ogg => Some(("oggenc", &["-Q", "-q", "5", "-o", "{out}", "{in}"])),
            Format::M4a => Some((
                "ffmpeg",
                &[
                    "-nostdin",
                    "-loglevel",
                    "error",
                    "-y",
                    "-i",
                    "{in}",
                    "-c:a",
                    "aac",
                    "-b:a",
                    "192k",
                    "{out}",
                ],
            )),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

/// The track every benchmark input is rendered from: rock at 123 BPM (a busy mix, so the
/// encoders and decoders do real work), 44.1 kHz stereo, seeded.
pub fn track_spec(seconds: f64, seed: u64) -> TrackSpec {
    TrackSpec::new(123.0, Style::Rock)
        .with_seconds(seconds)
        .with_seed(seed)
}

/// One rendered track, in memory and on disk in every format that could be made.
pub struct Inputs {
    dir: PathBuf,
    remove_on_drop: bool,
    /// Interleaved samples of the track.
    pub samples: Vec<f32>,
    /// Sample rate of `samples` in Hz.
    pub sample_rate: u32,
    /// Channels of `samples`.
    pub channels: u16,
    /// Seconds of audio in the track.
    pub seconds: f64,
    files: Vec<(Format, PathBuf)>,
    /// Formats that could not be made, with why (a missing or failing encoder).
    pub skipped: Vec<(Format, String)>,
}

impl Inputs {
    /// Renders a `seconds`-long track with `seed` into a fresh temporary folder (removed
    /// when the value is dropped) and writes it in every format it can.
    pub fn create(seconds: f64, seed: u64) -> io::Result<Inputs> {
        let dir = std::env::temp_dir().join(format!(
            "bench-suite-{}-{seconds}s-{seed}",
            std::process::id()
        ));
        let mut inputs = Self::create_in(&dir, "track", seconds, seed)?;
        inputs.remove_on_drop = true;
        Ok(inputs)
    }

    /// Renders the track into `dir` (created if missing, kept afterwards) as
    /// `NAME.wav`, `NAME.flac`, ... and writes it in every format it can.
    pub fn create_in(dir: &Path, name: &str, seconds: f64, seed: u64) -> io::Result<Inputs> {
        fs::create_dir_all(dir)?;
        let spec = track_spec(seconds, seed);
        let samples = synth_music::render(&spec);
        let mut inputs = Inputs {
            dir: dir.to_path_buf(),
            remove_on_drop: false,
            samples,
            sample_rate: spec.sample_rate,
            channels: spec.channels,
            seconds: spec.seconds,
            files: Vec::new(),
            skipped: Vec::new(),
        };
        let wav = dir.join(format!("{name}.wav"));
        synth_music::write_wav(&wav, &inputs.samples, spec.sample_rate, spec.channels)
            .map_err(io::Error::other)?;
        inputs.files.push((Format::Wav, wav.clone()));
        let flac = dir.join(format!("{name}.flac"));
        synth_music::write_flac(&flac, &inputs.samples, spec.sample_rate, spec.channels)
            .map_err(io::Error::other)?;
        inputs.files.push((Format::Flac, flac));
        for format in [Format::Mp3, Format::Ogg, Format::M4a] {
            let out = dir.join(format!("{name}.{}", format.extension()));
            match encode(format, &wav, &out) {
                Ok(()) => inputs.files.push((format, out)),
                Err(why) => inputs.skipped.push((format, why)),
            }
        }
        Ok(inputs)
    }

    /// The file of `format`, if it could be made.
    pub fn file(&self, format: Format) -> Option<&Path> {
        self.files
            .iter()
            .find(|(f, _)| *f == format)
            .map(|(_, p)| p.as_path())
    }

    /// The folder holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The track mixed down to mono at its own rate, as the decoder hands it on.
    pub fn mono(&self) -> Vec<f32> {
        let mut mono = Vec::new();
        analyzer_core::decode::mix_to_mono(&self.samples, usize::from(self.channels), &mut mono);
        mono
    }
}

impl Drop for Inputs {
    fn drop(&mut self) {
        if self.remove_on_drop {
            // Best effort: a leftover temporary folder is harmless.
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Writes `count` different `seconds`-long tracks (seeds `0..count`) into `dir` as FLAC
/// files `batch-NN.flac` and returns their paths: the input of the batch benchmarks.
pub fn write_batch(dir: &Path, count: usize, seconds: f64) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir)?;
    (0..count)
        .map(|i| {
            let spec = track_spec(seconds, i as u64);
            let path = dir.join(format!("batch-{i:02}.flac"));
            synth_music::write_flac(
                &path,
                &synth_music::render(&spec),
                spec.sample_rate,
                spec.channels,
            )
            .map_err(io::Error::other)?;
            Ok(path)
        })
        .collect()
}

/// Encodes `wav` to `out` with the external encoder of `format`; the error says why not.
fn encode(format: Format, wav: &Path, out: &Path) -> Result<(), String> {
    let Some((program, args)) = format.encoder() else {
        return Err(format!("{format} needs no encoder"));
    };
    let args: Vec<&std::ffi::OsStr> = args
        .iter()
        .map(|a| match *a {
            "{in}" => wav.as_os_str(),
            "{out}" => out.as_os_str(),
            other => std::ffi::OsStr::new(other),
        })
        .collect();
    let status = Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() && out.is_file() => Ok(()),
        Ok(s) => Err(format!("`{program}` failed ({s})")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(format!("`{program}` is not on the PATH"))
        }
        Err(e) => Err(format!("cannot run `{program}`: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_and_flac_are_always_made_and_cleaned_up() {
        let inputs = Inputs::create(1.0, 3).unwrap();
        let dir = inputs.dir().to_path_buf();
        assert!(inputs.file(Format::Wav).unwrap().is_file());
        assert!(inputs.file(Format::Flac).unwrap().is_file());
        for format in [Format::Mp3, Format::Ogg, Format::M4a] {
            // Either made or skipped with a reason, never both.
            let made = inputs.file(format).is_some();
            let skipped = inputs.skipped.iter().any(|(f, _)| *f == format);
            assert!(made != skipped, "{format}");
        }
        assert_eq!(inputs.mono().len(), 44_100);
        drop(inputs);
        assert!(!dir.exists());
    }
}
