//! What is read of a file before the probe: its first bytes and headers, which refuse it
//! at once (a container, codec or channel count this analyzer does not read) or change how
//! the probe is shown it (a FLAC's appended tags, a chained Ogg's links, a WAV's speaker
//! layout and a length its header leaves unknown, an MP3 cut short). Each read is bounded by the headers
//! walked, never the audio.

use std::fs::File;
use std::io::Seek;

use symphonia::core::audio::Channels;

use super::ogg_chain::{self, Chain};
use super::refusals::{
    extensible_g711, too_many_wav_channels, unsupported_container, wav_codec_refusal,
};
use super::{trailing_tags, wav_layout, wav_sizes, xing};
use crate::error::{Error, ErrorKind, Result, Stage};

/// What [`read`] found.
pub(super) struct Prelude {
    /// The file's first bytes ([`HEAD_BYTES`] of them, fewer in a shorter file).
    pub head: Vec<u8>,
    /// A WAV's speaker layout where symphonia would misplace channels ([`wav_layout`]).
    pub layout: Option<Channels>,
    /// A WAV's length from its size, for a header that leaves it unknown.
    pub wav_seconds: Option<f64>,
    /// Where a FLAC's audio ends, before tags appended to it.
    pub audio_end: Option<u64>,
    /// An Ogg file's links (none for other files).
    pub chain: Chain,
    /// An MP3's bytes as its Xing/Info header announces them and as the file holds them,
    /// where it holds fewer: it was cut short ([`xing`]).
    pub mp3_cut_short: Option<(u64, u64)>,
}

/// Reads what the probe needs to know of `file` (of `file_bytes` bytes), which is left
/// rewound; an error where the file is refused before the probe.
pub(super) fn read(file: &mut File, file_bytes: u64) -> Result<Prelude> {
    let head = read_head(file);
    // Before the probe: it scans past headers it does not know for any marker it does, so
    // a Matroska file holding FLAC was taken for a FLAC stream that "holds no audio".
    if let Some(refused) = unsupported_container(&head) {
        return Err(refused);
    }
    let (mut layout, mut wav_seconds) = (None, None);
    if wav_sizes::is_wave(&head) {
        // A codec symphonia reads no WAV of, said only "unsupported wave format"; a channel
        // count past the decoder's was read as another (33 as 1).
        if let Some(refused) = wav_sizes::format_tag(file, file_bytes)
            .and_then(wav_codec_refusal)
            .or_else(|| wav_sizes::most_channels(file, file_bytes).and_then(too_many_wav_channels))
            .or_else(|| {
                wav_sizes::extensible_sub_format(file, file_bytes).and_then(extensible_g711)
            })
        {
            return Err(refused);
        }
        layout = wav_layout::unnamed_channels(file, file_bytes);
        wav_seconds = wav_sizes::seconds_to_end(file, file_bytes);
    }
    // A FLAC stream with an ID3v1 or APEv2 tag appended is read as ending before it.
    let audio_end = if trailing_tags::is_flac(file, &head) {
        trailing_tags::audio_end(file, file_bytes)
    } else {
        None
    };
    // A chained Ogg announces only its first link's length: it is decoded whole.
    let chain = if head.starts_with(b"OggS") {
        ogg_chain::walk(file, file_bytes)
    } else {
        Chain::default()
    };
    // An MP3 (behind an ID3v2 tag, junk or nothing) whose end is missing.
    // Not for the containers known by their first bytes (an MP4's `ftyp` too): the search
    // for an MP3's first frame reads up to 1 MiB.
    let other = wav_sizes::is_wave(&head)
        || head.starts_with(b"fLaC")
        || head.starts_with(b"OggS")
        || head.get(4..8) == Some(b"ftyp");
    let mp3_cut_short = if other {
        None
    } else {
        xing::cut_short(file, file_bytes)
    };
    // Speex is named by its own refusal once the open fails.
    if let Some(holds) = chain.first_without_audio.filter(|h| *h != "Speex audio") {
        return Err(Error::new(
            ErrorKind::UnsupportedFormat,
            Stage::Probe,
            format!("the Ogg file holds {holds} and no audio stream this analyzer reads"),
        ));
    }
    file.rewind()
        .map_err(|e| Error::io(ErrorKind::Unreadable, Stage::Open, &e))?;
    Ok(Prelude {
        head,
        layout,
        wav_seconds,
        audio_end,
        chain,
        mp3_cut_short,
    })
}

/// How much of a file's start [`read_head`] reads: a RIFF or FORM header (12 bytes) and an
/// Ogg page's header with its first packet's 8-byte codec name (at 28).
const HEAD_BYTES: usize = 36;

/// The first [`HEAD_BYTES`] of `file` (fewer in a shorter file), read from the open handle, which
/// is rewound: the path is never opened a second time (it may have been swapped for a pipe
/// since).
fn read_head(file: &mut File) -> Vec<u8> {
    use std::io::{Read, Seek};
    let mut head = Vec::with_capacity(HEAD_BYTES);
    if file
        .by_ref()
        .take(HEAD_BYTES as u64)
        .read_to_end(&mut head)
        .is_err()
        || file.rewind().is_err()
    {
        head.clear();
    }
    head
}
