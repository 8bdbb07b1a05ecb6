//! Writing rendered tracks to disk as 16-bit WAV or FLAC.
//!
//! Every file is written under a temporary name in the same folder and then
//! renamed, so a reader never sees a half-written file, and a failed write
//! leaves nothing behind.

use std::fs;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

/// Errors of this crate: each names the file (where there is one) and why.
///
/// The reason of an I/O or WAV failure is the error's
/// [`source`](std::error::Error::source); print the chain (e.g. anyhow's
/// `{:#}`) to see both.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A [`crate::TrackSpec`] or [`crate::DatasetSpec`] value is out of
    /// range, or a name did not parse.
    #[error("invalid spec: {reason}")]
    InvalidSpec {
        /// What is wrong.
        reason: String,
    },
    /// Creating, writing or renaming a file or folder failed.
    #[error("cannot write {}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The WAV encoder failed.
    #[error("cannot encode WAV {}", path.display())]
    Wav {
        /// The file being written.
        path: PathBuf,
        /// The encoder's reason.
        source: hound::Error,
    },
    /// The FLAC encoder failed.
    #[error("cannot encode FLAC {}: {reason}", path.display())]
    Flac {
        /// The file being written.
        path: PathBuf,
        /// The encoder's reason.
        reason: String,
    },
}

impl Error {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Converts a float sample to 16-bit PCM, rounding and clamping.
fn to_i16(x: f32) -> i16 {
    (x * 32_767.0).round().clamp(-32_768.0, 32_767.0) as i16
}

fn check_layout(
    path: &Path,
    samples: &[f32],
    sample_rate: u32,
    channels: u16,
) -> Result<(), Error> {
    let reason = if channels == 0 {
        Some("zero channels".to_owned())
    } else if sample_rate == 0 {
        Some("zero sample rate".to_owned())
    } else if !samples.len().is_multiple_of(usize::from(channels)) {
        Some(format!(
            "{} samples do not fill whole frames of {channels} channels",
            samples.len()
        ))
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidSpec {
            reason: format!("{}: {reason}", path.display()),
        }),
        None => Ok(()),
    }
}

/// Writes `path` through a temporary sibling: `write` fills the temporary
/// file, which is then renamed into place; on any error it is removed.
fn write_atomically(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), Error>,
) -> Result<(), Error> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::InvalidSpec {
            reason: format!("{}: not a file name", path.display()),
        })?
        .to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = write(&tmp).and_then(|()| fs::rename(&tmp, path).map_err(|e| Error::io(path, e)));
    if result.is_err() {
        // Best effort: the temporary file may not exist.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes interleaved `samples` as a 16-bit PCM WAV file at `path`.
///
/// The file appears at `path` only once it is complete.
pub fn write_wav(
    path: &Path,
    samples: &[f32],
    sample_rate: u32,
    channels: u16,
) -> Result<(), Error> {
    check_layout(path, samples, sample_rate, channels)?;
    write_atomically(path, |tmp| {
        let wav_err = |source| Error::Wav {
            path: path.to_path_buf(),
            source,
        };
        let file = fs::File::create(tmp).map_err(|e| Error::io(tmp, e))?;
        let wav_spec = hound::WavSpec {
            channels,
            sample_rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::new(BufWriter::new(file), wav_spec).map_err(wav_err)?;
        {
            let mut block = writer.get_i16_writer(samples.len() as u32);
            for &x in samples {
                block.write_sample(to_i16(x));
            }
            block.flush().map_err(wav_err)?;
        }
        writer.finalize().map_err(wav_err)
    })
}

/// Writes interleaved `samples` as a 16-bit FLAC file at `path`.
///
/// The file appears at `path` only once it is complete.
pub fn write_flac(
    path: &Path,
    samples: &[f32],
    sample_rate: u32,
    channels: u16,
) -> Result<(), Error> {
    use flacenc::component::BitRepr;
    use flacenc::error::Verify;

    check_layout(path, samples, sample_rate, channels)?;
    let flac_err = |reason: String| Error::Flac {
        path: path.to_path_buf(),
        reason,
    };
    let mut pcm: Vec<i32> = samples.iter().map(|&x| i32::from(to_i16(x))).collect();
    let config = flacenc::config::Encoder::default()
        .into_verified()
        .map_err(|(_, e)| flac_err(e.to_string()))?;
    // flacenc records a short last block as the stream's minimum block size; decoders
    // such as symphonia then expect variable-size frame headers and cannot sync. Padding
    // the last block with silence (under 0.1 s) keeps every block the same size.
    let channel_count = usize::from(channels);
    let frames = pcm.len() / channel_count;
    pcm.resize(
        frames.div_ceil(config.block_size) * config.block_size * channel_count,
        0,
    );
    let source = flacenc::source::MemSource::from_samples(
        &pcm,
        usize::from(channels),
        16,
        sample_rate as usize,
    );
    let stream = flacenc::encode_with_fixed_block_size(&config, source, config.block_size)
        .map_err(|e| flac_err(e.to_string()))?;
    let mut sink = flacenc::bitsink::ByteSink::new();
    stream
        .write(&mut sink)
        .map_err(|e| flac_err(e.to_string()))?;
    write_atomically(path, |tmp| {
        fs::write(tmp, sink.as_slice()).map_err(|e| Error::io(tmp, e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(frames: usize, channels: u16) -> Vec<f32> {
        (0..frames * usize::from(channels))
            .map(|i| 0.5 * libm::sinf(i as f32 * 0.05))
            .collect()
    }

    #[test]
    fn wav_round_trips_through_hound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tone.wav");
        let samples = tone(4_000, 2);
        write_wav(&path, &samples, 22_050, 2).unwrap();
        let mut reader = hound::WavReader::open(&path).unwrap();
        let spec = reader.spec();
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (2, 22_050, 16)
        );
        let back: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(back.len(), samples.len());
        for (&b, &x) in back.iter().zip(&samples) {
            assert!((f32::from(b) / 32_767.0 - x).abs() <= 1.0 / 32_767.0);
        }
        // Only the finished file is left in the folder.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn flac_has_magic_and_compresses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tone.flac");
        let samples = tone(44_100, 2);
        write_flac(&path, &samples, 44_100, 2).unwrap();
        let bytes = fs::read(&path).unwrap();
        assert_eq!(&bytes[..4], b"fLaC");
        assert!(bytes.len() > 1_000, "{} bytes", bytes.len());
        assert!(bytes.len() < samples.len() * 2, "{} bytes", bytes.len());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-folder").join("x.wav");
        let err = write_wav(&path, &[0.0; 4], 8_000, 2).unwrap_err();
        assert!(err.to_string().contains("missing-folder"), "{err}");
        let err = write_flac(&dir.path().join("odd.flac"), &[0.0; 3], 8_000, 2).unwrap_err();
        assert!(err.to_string().contains("odd.flac"), "{err}");
    }
}
