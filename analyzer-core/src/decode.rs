//! Decoding: any file symphonia can read, streamed packet by packet and mixed down to mono.
//!
//! The container is recognised by its content; the file extension is only a hint, so a
//! FLAC file named `.mp3` still decodes. Nothing is kept beyond one packet: the caller
//! receives each packet's mono samples and decides what to keep, which is what lets a
//! one-hour mix be analysed in the same few megabytes as a song.
//!
//! The mix down (`decode/mix.rs`) and the reasons a file is refused before its audio is read
//! (`decode/refusals.rs`) live apart. This file stays over 500 lines: the whole and the sampled
//! decode share the opened track and the per-packet state (`Decoding`), which would
//! otherwise have to be exposed between files.

use std::fs::File;
use std::path::Path;

use symphonia::core::audio::{Channels, GenericAudioBufferRef};
use symphonia::core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, SeekMode, SeekTo, Track, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::packet::Packet;
use symphonia::core::units::{Duration, Time, TimeBase, Timestamp};

use crate::error::{Error, ErrorKind, Result, Stage};
use crate::stop::StopSignal;

mod mix;
mod ogg_chain;
mod prelude;
mod refusals;
mod trailing_tags;
mod wav_layout;
mod wav_sizes;
mod xing;

pub use mix::{MAX_SAMPLE, MonoMixer, mix_to_mono};
pub(crate) use mix::{audio_or_silence, is_audio};
use prelude::Prelude;
use refusals::{probe_error, unsupported_codec, unsupported_stream};

/// After this many packets in a row fail to decode, the stream is treated as ended.
const MAX_CONSECUTIVE_BAD_PACKETS: usize = 64;

/// The sample rates read, in Hz. Below 4 kHz there is no music to find a tempo in, and a
/// header claiming 1 Hz would make the resampler's tables enormous; above 768 kHz no
/// audio format in use records.
pub const SAMPLE_RATES: std::ops::RangeInclusive<u32> = 4_000..=768_000;

/// The most channels the decoder maps (symphonia's channel positions); a WAV or AIFF header
/// claiming more is refused as an unsupported format.
pub const MAX_DECODER_CHANNELS: u32 = 26;

/// The most decoded samples (all channels) a file may yield per byte of its size once it
/// is past its free allowance ([`FREE_SECONDS`], [`FREE_SAMPLES`]). Real music compresses
/// to at most a few tens of samples per byte (AAC at 16 kb/s stereo: about 44; FLAC about
/// 2; PCM at most 1); a long stream that decodes to far more is a decompression bomb or a
/// lying header, and decoding it stops with [`ErrorKind::ResourceLimit`] before it costs
/// more CPU and memory than its size justifies.
pub const MAX_SAMPLES_PER_BYTE: u64 = 256;

/// The seconds of audio any file may decode whatever its size, up to [`FREE_SAMPLES`].
/// Digital silence and sparse audio (a click track) compress to 300-600 samples per byte
/// in FLAC and Ogg Vorbis, past [`MAX_SAMPLES_PER_BYTE`], and are real files a tempo tool
/// must read. A whole analysis costs CPU and memory by the second of audio (its envelope
/// and chroma grow with the length), so two hours keep the dearest tiny file (4 kHz mono)
/// near what a two-hour mix costs and within a worker's memory share (measured in
/// `docs/guarantees.md`).
pub const FREE_SECONDS: u64 = 2 * 3_600;

/// The decoded samples (all channels) any file may yield whatever its size: two hours of
/// 48 kHz stereo. Decoding costs by the sample, so eight channels at 192 kHz get less
/// than [`FREE_SECONDS`] of free audio.
pub const FREE_SAMPLES: u64 = FREE_SECONDS * 48_000 * 2;

/// The most decoded samples (all channels) a file of `bytes` bytes may yield: its free
/// allowance or [`MAX_SAMPLES_PER_BYTE`] for each byte, whichever is more.
pub fn sample_budget(bytes: u64) -> u64 {
    bytes.saturating_mul(MAX_SAMPLES_PER_BYTE).max(FREE_SAMPLES)
}

/// What one file has decoded, against what it may before it counts as a bomb: anything
/// within [`MAX_SAMPLES_PER_BYTE`] of its size, else no more than [`FREE_SECONDS`] of
/// audio and [`FREE_SAMPLES`] samples.
#[derive(Debug, Clone, Copy)]
struct SampleBudget {
    /// [`MAX_SAMPLES_PER_BYTE`] times the file's size.
    by_size: u64,
    /// Decoded samples (all channels) so far.
    samples: u64,
    /// Decoded frames (one sample of each channel) so far.
    frames: u64,
}

impl SampleBudget {
    fn new(file_bytes: u64) -> Self {
        SampleBudget {
            by_size: file_bytes.saturating_mul(MAX_SAMPLES_PER_BYTE),
            samples: 0,
            frames: 0,
        }
    }

    /// Counts a decoded buffer of `frames` frames of `channels` channels at `rate` Hz;
    /// false once the stream is past its budget.
    fn spend(&mut self, frames: u64, channels: u64, rate: u32) -> bool {
        self.samples = self.samples.saturating_add(frames.saturating_mul(channels));
        self.frames = self.frames.saturating_add(frames);
        self.samples <= self.by_size
            || (self.samples <= FREE_SAMPLES && self.frames <= FREE_SECONDS * u64::from(rate))
    }
}

/// What the decoder learned about a stream while decoding it.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamInfo {
    /// The codec's short name, as symphonia calls it (`mp3`, `flac`, `vorbis`, `aac`, `pcm_s16le`, ...).
    pub codec: String,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Channels in the source (before the mixdown).
    pub channels: u16,
    /// Mono frames delivered to the caller.
    pub frames: u64,
    /// Problems that were survived: skipped packets, a truncated end, samples that are not
    /// audio (NaN, infinite, beyond ±[`MAX_SAMPLE`]).
    pub warnings: Vec<String>,
}

impl StreamInfo {
    /// Seconds of audio delivered.
    pub fn duration_s(&self) -> f64 {
        if self.sample_rate == 0 {
            0.0
        } else {
            self.frames as f64 / f64::from(self.sample_rate)
        }
    }
}

/// What a file's headers say, read without decoding any audio.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeInfo {
    /// The codec's short name (`mp3`, `flac`, `vorbis`, `aac`, `pcm_s16le`, ...).
    pub codec: String,
    /// Sample rate in Hz, when the headers give it.
    pub sample_rate: Option<u32>,
    /// Channels, when the headers give them.
    pub channels: Option<u16>,
    /// Seconds of audio the headers announce; `None` when they do not say (an MP3 without
    /// a Xing/Info header, a stream cut short). A damaged file may hold less.
    pub duration_s: Option<f64>,
}

/// Opens `path` for reading if, after following symlinks, it is a regular file, and says
/// what it is otherwise: a named pipe, socket or device is never audio, and opening a pipe
/// for reading would block until a writer comes, past every deadline and stop signal.
///
/// The type is checked before opening and again on the open handle (the path may have
/// been swapped in between); on Unix the open is non-blocking, so even a pipe swapped in
/// at that instant cannot hang it. Every reader of user files (decode, the cache's
/// content hash, the service) opens through here.
pub fn open_regular(path: &Path) -> Result<File> {
    let unreadable = |e: std::io::Error| Error::io(ErrorKind::Unreadable, Stage::Open, &e);
    check_regular(&std::fs::metadata(path).map_err(unreadable)?)?;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(unreadable)?;
    check_regular(&file.metadata().map_err(unreadable)?)?;
    Ok(file)
}

/// An error naming what a non-regular file is.
fn check_regular(meta: &std::fs::Metadata) -> Result<()> {
    let kind = meta.file_type();
    if kind.is_file() {
        return Ok(());
    }
    let what = if kind.is_dir() {
        "is a directory"
    } else {
        special_file_kind(&kind)
    };
    Err(Error::new(ErrorKind::Unreadable, Stage::Open, what))
}

#[cfg(unix)]
fn special_file_kind(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "is a named pipe (FIFO), not a regular file"
    } else if kind.is_socket() {
        "is a socket, not a regular file"
    } else if kind.is_block_device() || kind.is_char_device() {
        "is a device, not a regular file"
    } else {
        "is not a regular file"
    }
}

#[cfg(not(unix))]
fn special_file_kind(_: &std::fs::FileType) -> &'static str {
    "is not a regular file"
}

/// An opened container, its audio track and a decoder for it.
struct OpenTrack {
    format: Box<dyn FormatReader>,
    track_id: u32,
    params: AudioCodecParameters,
    decoder: Box<dyn AudioDecoder>,
    duration_s: Option<f64>,
    /// Whether the headers announce `duration_s`, so that running into the end of the file
    /// before it is a cut: not where the length was worked out from the file's size.
    length_announced: bool,
    time_base: Option<TimeBase>,
    /// What this file may decode, by its size.
    budget: SampleBudget,
    /// What was wrong with the headers and survived (a WAV's sizes), for the stream's
    /// warnings.
    warnings: Vec<String>,
    /// The speaker layout read from the header where symphonia's would misplace channels
    /// ([`wav_layout`]); `None` to take the decoder's.
    layout: Option<Channels>,
    /// The links a chained Ogg's page walk found, where every one holds audio the reader
    /// takes up: a decode that ends in an earlier one says so. 0 for other files.
    links: usize,
    /// Whether `warnings` already say why the length is unknown (an MP3 cut short), so
    /// that a sampled analysis read whole does not give the general reason too.
    length_unknown_said: bool,
}

/// Opens `path`, recognises the container by content (the extension is only a hint) and
/// sets up a decoder for its default audio track.
///
/// A WAV file whose header sizes were never filled in (an unfinished recording) fails the
/// probe or shows no audio; it is probed once more through [`wav_sizes::PatchedSizes`],
/// which shows sizes that reach the end of the file, and the track carries a warning
/// saying so. A well-formed file is probed once, as it is.
///
/// Every read of the file asks `stop` first ([`StopOnRead`]), so that a probe, seek or
/// demux scanning a long stretch of bytes that are not audio stops when the file's time is
/// up: the loops' own checks come between packets only.
fn open_track(path: &Path, stop: &StopSignal) -> Result<OpenTrack> {
    let mut file = open_regular(path)?;
    let file_bytes = file.metadata().map_or(0, |m| m.len());
    if file_bytes == 0 {
        // A file of /proc says it is 0 bytes long and holds text, or cannot be read at all
        // (`/proc/self/mem`): "empty" was not true of either.
        let reason = match std::io::Read::read(&mut file, &mut [0u8; 1]) {
            Ok(0) => "the file is empty (0 bytes)".to_string(),
            Ok(_) => "the file gives its size as 0 bytes yet holds bytes (a file of /proc or \
                      /sys): not audio"
                .to_string(),
            Err(e) => {
                format!("the file gives its size as 0 bytes and cannot be read ({e}): not audio")
            }
        };
        return Err(Error::new(
            ErrorKind::UnsupportedFormat,
            Stage::Probe,
            reason,
        ));
    }
    let Prelude {
        head,
        layout,
        wav_seconds,
        audio_end,
        chain,
        mp3_cut_short,
    } = prelude::read(&mut file, file_bytes)?;
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    // The same open file (never the path again: it may have been swapped since), for a
    // second probe of a WAV whose sizes lie. Without a descriptor for it the file would be
    // read differently, so running out of them fails the open (to be tried again).
    let second = if wav_sizes::is_wave(&head) {
        match file.try_clone() {
            Ok(second) => Some(second),
            Err(e) if crate::error::is_out_of_files(&e) => {
                return Err(Error::io(ErrorKind::Unreadable, Stage::Open, &e));
            }
            Err(_) => None,
        }
    } else {
        None
    };
    let chained = chain.links > 1;
    let source: Box<dyn MediaSource> = match audio_end {
        Some(end) => match trailing_tags::Trimmed::new(file, end) {
            Ok(trimmed) => Box::new(trimmed),
            Err(e) => return Err(Error::io(ErrorKind::Unreadable, Stage::Open, &e)),
        },
        None => Box::new(file),
    };
    let first = probe_track(StopOnRead::boxed(source, stop), &hint, file_bytes);
    // Stopped inside the probe, it is neither refused nor repaired.
    stop.check(Stage::Probe)?;
    let first = first.map(|mut open| {
        open.layout = layout.clone();
        if chained {
            open.duration_s = None;
            open.length_announced = false;
        }
        if chained && chain.unread.is_none() {
            open.links = chain.links;
        }
        if let Some((link, holds)) = chain.unread {
            open.warnings.push(format!(
                "link {link} of the {} of this chained Ogg holds {holds}, which is not \
                 decoded here: decoding stops there",
                chain.links
            ));
        }
        open.duration_s = open.duration_s.or(wav_seconds);
        if let Some((announced, held)) = mp3_cut_short {
            // The header's length is the whole song's: the file ends before it, and what
            // it holds is known once decoded.
            open.duration_s = None;
            open.length_announced = false;
            open.length_unknown_said = true;
            open.warnings.push(format!(
                "the file holds {:.1} % of the {announced} bytes its Xing header announces: \
                 it was cut short (an unfinished download or copy) and is read whole to where \
                 it ends",
                held as f64 * 100.0 / announced as f64
            ));
        }
        open
    });
    // A bare stream the probe cannot read (or misread: DTS as MPEG audio) is named.
    if first.is_err()
        && let Some(named) = unsupported_stream(&head)
    {
        return Err(named);
    }
    // symphonia reads a data size of 0 as a track of 0 frames.
    let no_audio = matches!(&first, Ok(open) if open.duration_s == Some(0.0));
    if first.is_ok() && !no_audio {
        return first;
    }
    let Some(mut second) = second else {
        return first;
    };
    let Some(repair) = wav_sizes::SizeRepair::plan(&mut second, file_bytes) else {
        return first;
    };
    let warning = repair.warning();
    let Ok(patched) = repair.apply(second) else {
        return first;
    };
    match probe_track(
        StopOnRead::boxed(Box::new(patched), stop),
        &hint,
        file_bytes,
    ) {
        Ok(mut open) => {
            open.warnings.extend(warning);
            open.layout = layout;
            open.duration_s = open.duration_s.or(wav_seconds);
            Ok(open)
        }
        Err(_) => first,
    }
}

/// Probes `source` (a file of `file_bytes` bytes) and sets up a decoder for its default
/// audio track, or, where that one's codec is not decoded here, for the first audio track
/// whose codec is (an M4A of ALAC and AAC was refused as ALAC). A file of several audio
/// tracks says which one was read.
fn probe_track(source: Box<dyn MediaSource>, hint: &Hint, file_bytes: u64) -> Result<OpenTrack> {
    let stream = MediaSourceStream::new(source, Default::default());
    let format = symphonia::default::get_probe()
        .probe(
            hint,
            stream,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| probe_error(&e))?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| Error::new(ErrorKind::UnsupportedFormat, Stage::Probe, "no audio track"))?;
    let audio_of = |track: &Track| track.codec_params.as_ref().and_then(|p| p.audio()).cloned();
    let params = audio_of(track).ok_or_else(|| {
        Error::new(
            ErrorKind::UnsupportedFormat,
            Stage::Probe,
            "the track is not audio",
        )
    })?;
    let make = |params: &AudioCodecParameters| {
        symphonia::default::get_codecs().make_audio_decoder(params, &AudioDecoderOptions::default())
    };
    let audio_tracks: Vec<&Track> = format
        .tracks()
        .iter()
        .filter(|t| audio_of(t).is_some())
        .collect();
    let (track, params, decoder) = match make(&params) {
        Ok(decoder) => (track, params, decoder),
        Err(e) => {
            let other = audio_tracks
                .iter()
                .filter(|t| t.id != track.id)
                .find_map(|t| {
                    let params = audio_of(t)?;
                    let decoder = make(&params).ok()?;
                    Some((*t, params, decoder))
                });
            other.ok_or_else(|| unsupported_codec(params.codec, &e))?
        }
    };
    if let Some(rate) = params.sample_rate {
        check_sample_rate(rate)?;
    }
    let mut warnings = Vec::new();
    if audio_tracks.len() > 1 {
        let position = audio_tracks
            .iter()
            .position(|t| t.id == track.id)
            .unwrap_or(0);
        warnings.push(format!(
            "the file holds {} audio tracks: track {} of them ({}) was read",
            audio_tracks.len(),
            position + 1,
            decoder.codec_info().short_name
        ));
    }
    let track_id = track.id;
    let time_base = track.time_base;
    let duration_s = match (track.num_frames, params.sample_rate) {
        (Some(frames), Some(rate)) if rate > 0 => Some(frames as f64 / f64::from(rate)),
        _ => track
            .duration
            .zip(track.time_base)
            .map(|(d, tb)| d.get() as f64 * f64::from(tb)),
    }
    .filter(|d| d.is_finite() && *d >= 0.0);
    Ok(OpenTrack {
        format,
        track_id,
        params,
        decoder,
        duration_s,
        length_announced: duration_s.is_some(),
        time_base,
        budget: SampleBudget::new(file_bytes),
        warnings,
        layout: None,
        links: 0,
        length_unknown_said: false,
    })
}

/// An error for a sample rate outside [`SAMPLE_RATES`].
pub(crate) fn check_sample_rate(rate: u32) -> Result<()> {
    if SAMPLE_RATES.contains(&rate) {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::UnsupportedFormat,
        Stage::Probe,
        format!(
            "a sample rate of {rate} Hz is outside the {}-{} Hz this analyzer reads",
            SAMPLE_RATES.start(),
            SAMPLE_RATES.end()
        ),
    ))
}

/// Seconds [`probe`] may take: headers read in milliseconds.
const PROBE_SECONDS: u64 = 1;

/// Reads `path`'s headers: codec, rate, channels and announced length, without decoding.
/// The batch runner uses it to start the costliest files first.
///
/// It gives up after [`PROBE_SECONDS`]: a FLAC whose first frame lies past 60 GiB of junk
/// took 95 s to probe while a batch ordered its files, holding off the batch's timeout and
/// Ctrl-C (the file's own analysis stops on time); the order, not any row, depends on it.
pub fn probe(path: &Path) -> Result<ProbeInfo> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(PROBE_SECONDS);
    let open = open_track(path, &StopSignal::never().with_deadline(deadline))?;
    Ok(ProbeInfo {
        codec: open.decoder.codec_info().short_name.to_string(),
        sample_rate: open.params.sample_rate,
        channels: open.params.channels.as_ref().map(|c| c.count() as u16),
        duration_s: open.duration_s,
    })
}

/// Decodes `path` to mono, calling `sink` with each packet's samples in order.
///
/// The sink gets the stream's sample rate on every call, so that it can set itself up on
/// the first one. A stream that breaks part-way keeps what decoded and reports the damage
/// in [`StreamInfo::warnings`]; one that yields nothing at all is an error.
pub fn decode_mono(
    path: &Path,
    stop: &StopSignal,
    sink: impl FnMut(&[f32], u32) -> Result<()>,
) -> Result<StreamInfo> {
    decode_whole(open_track(path, stop)?, stop, sink)
}

/// [`decode_mono`] of a track already opened.
fn decode_whole(
    open: OpenTrack,
    stop: &StopSignal,
    mut sink: impl FnMut(&[f32], u32) -> Result<()>,
) -> Result<StreamInfo> {
    decode_packets(open, stop, |_, state, rate| sink(&state.mono, rate))
}

/// Decodes a whole track, calling `on_packet` with each packet and the state holding its
/// samples (interleaved and mixed to mono) at `rate`.
fn decode_packets(
    open: OpenTrack,
    stop: &StopSignal,
    mut on_packet: impl FnMut(&Packet, &Decoding, u32) -> Result<()>,
) -> Result<StreamInfo> {
    let OpenTrack {
        mut format,
        mut track_id,
        params,
        mut decoder,
        budget,
        duration_s,
        length_announced,
        warnings,
        layout,
        links,
        ..
    } = open;
    let mut state = Decoding::new(
        budget,
        length_announced,
        layout,
        StreamInfo {
            codec: decoder.codec_info().short_name.to_string(),
            sample_rate: params.sample_rate.unwrap_or(0),
            channels: params.channels.as_ref().map_or(0, |c| c.count() as u16),
            frames: 0,
            warnings,
        },
    );
    let mut past_end = PastEnd::new(duration_s);
    // The link of a chained Ogg being decoded, and whether the decode was ended (damage, a
    // link it cannot go on to) with a warning of its own.
    let (mut link, mut stopped) = (1, false);
    'stream: loop {
        stop.check(Stage::Decode)?;
        let next = state.next_packet(format.as_mut());
        // A read stopped inside the demuxer ends the stream as damage would: the stop is
        // what it is.
        stop.check(Stage::Decode)?;
        let Some(packet) = next? else {
            if !std::mem::take(&mut state.reset) {
                break;
            }
            // The next link of a chained Ogg: decoded on if it sounds at the same rate in as
            // many channels, what the first link's decoder held decoded first.
            for packet in std::mem::take(&mut past_end.held) {
                if !decode_one(decoder.as_mut(), &mut state, &packet, &mut on_packet)? {
                    stopped = true;
                    break 'stream;
                }
            }
            match next_link(format.as_ref(), &state.info, link + 1, links) {
                Ok((id, next)) => {
                    (track_id, decoder) = (id, next);
                    link += 1;
                    continue;
                }
                Err(why) => {
                    state.info.warnings.push(why);
                    stopped = true;
                    break;
                }
            }
        };
        if packet.track_id != track_id {
            continue;
        }
        past_end.push(packet, &mut state.info.warnings);
        while let Some(packet) = past_end.ready.pop_front() {
            if !decode_one(decoder.as_mut(), &mut state, &packet, &mut on_packet)? {
                // Decoding ended here: nothing held comes after it.
                past_end.held.clear();
                stopped = true;
                break 'stream;
            }
        }
    }
    // symphonia's reader ends the stream without a word at a link whose headers it cannot
    // read (a damaged Vorbis header): the links left are said.
    if !stopped && link < links && state.info.frames > 0 {
        state.info.warnings.push(format!(
            "decoding ended in link {link} of the {links} of this chained Ogg: the next \
             link's headers could not be read"
        ));
    }
    // What is still held at the end of the stream is the encoder's padding: decoded, as it
    // always was, to nothing.
    for packet in std::mem::take(&mut past_end.held) {
        if !decode_one(decoder.as_mut(), &mut state, &packet, &mut on_packet)? {
            break;
        }
    }
    state.finish()
}

/// The track and decoder of the link a chained stream has moved on to (its reader said
/// `ResetRequired`); why decoding stops there when it cannot go on: a rate or channel count
/// other than `info`'s, which the mono mix and the analysis would have to start again for.
/// `next` is that link's number and `links` how many the page walk found, for the note.
fn next_link(
    format: &dyn FormatReader,
    info: &StreamInfo,
    next: usize,
    links: usize,
) -> std::result::Result<(u32, Box<dyn AudioDecoder>), String> {
    let stopped = |what: String| {
        if next <= links {
            format!(
                "link {next} of the {links} of this chained Ogg: {what}; decoding stopped there"
            )
        } else {
            format!("{what}; decoding stopped there")
        }
    };
    let Some((track, params)) = format
        .default_track(TrackType::Audio)
        .and_then(|t| Some((t, t.codec_params.as_ref()?.audio()?)))
    else {
        return Err(stopped("the stream changes to one without audio".into()));
    };
    let rate = params.sample_rate.unwrap_or(0);
    let channels = params.channels.as_ref().map_or(0, |c| c.count() as u16);
    if rate != info.sample_rate || channels != info.channels {
        return Err(stopped(format!(
            "the stream changes from {} Hz, {} channel(s), to {rate} Hz, {channels} channel(s)",
            info.sample_rate, info.channels
        )));
    }
    let decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|e| {
            stopped(format!(
                "the stream changes to a codec not decoded here ({e})"
            ))
        })?;
    Ok((track.id, decoder))
}

/// Decodes one packet and hands its samples on; whether to go on with the stream (false
/// once it has ended: too many bad packets, an error after some audio, a rate change).
fn decode_one(
    decoder: &mut dyn AudioDecoder,
    state: &mut Decoding,
    packet: &Packet,
    on_packet: &mut impl FnMut(&Packet, &Decoding, u32) -> Result<()>,
) -> Result<bool> {
    let buffer = match decoder.decode(packet) {
        Ok(buffer) => buffer,
        Err(SymphoniaError::DecodeError(_)) | Err(SymphoniaError::IoError(_)) => {
            return Ok(state.skip_bad_packet());
        }
        Err(e) => {
            state.stop_early("decoding", &e)?;
            return Ok(false);
        }
    };
    match state.mix(&buffer)? {
        Mixed::Samples(rate) => {
            state.info.frames += state.mono.len() as u64;
            on_packet(packet, state, rate)?;
        }
        Mixed::Nothing => {}
        Mixed::Stop => return Ok(false),
    }
    Ok(true)
}

/// The most packets in a row that may reach past the end the headers announce and still be
/// the last one with audio and the encoder's padding: LAME records at most 4095 padding
/// frames (a 12-bit field), 8 packets of 576 frames (MPEG-2.5 layer III) beyond the last
/// one; twice that leaves room.
const MAX_PADDING_PACKETS: usize = 16;

/// Packets that reach past the end the headers announce. symphonia trims every packet to
/// the track's frame count (for gapless playback), so past it a packet decodes to nothing:
/// an MP3 whose Xing header counted 10 frames of a 100-s song decoded to 0.2 s and was
/// `too_short`, while players (ffmpeg) read the whole song.
///
/// Every packet with frames trimmed from its end is held back undecoded. Up to
/// [`MAX_PADDING_PACKETS`] of them at the end of the stream are the last audio and the
/// encoder's padding, and are decoded, trimmed, exactly as before; one more means the
/// header lied: the held packets and all that follow are decoded untrimmed, in order
/// (decoding later changes nothing: a decoder sees the same packets in the same order),
/// and a warning says so.
struct PastEnd {
    /// The length the headers announce, for the warning.
    announced_s: Option<f64>,
    /// Packets trimmed at their end, not yet decoded.
    held: Vec<Packet>,
    /// Packets to decode now, in order.
    ready: std::collections::VecDeque<Packet>,
    /// More packets came past the announced end than padding explains.
    header_lied: bool,
}

impl PastEnd {
    fn new(announced_s: Option<f64>) -> Self {
        PastEnd {
            announced_s,
            held: Vec::new(),
            ready: std::collections::VecDeque::new(),
            header_lied: false,
        }
    }

    /// Takes the stream's next packet: it, and any held before it, become `ready` unless it
    /// is held itself.
    fn push(&mut self, mut packet: Packet, warnings: &mut Vec<String>) {
        if self.header_lied {
            packet.trim_end = Duration::ZERO;
            self.ready.push_back(packet);
            return;
        }
        if packet.trim_end.get() == 0 {
            self.ready.extend(self.held.drain(..));
            self.ready.push_back(packet);
            return;
        }
        self.held.push(packet);
        if self.held.len() <= MAX_PADDING_PACKETS {
            return;
        }
        self.header_lied = true;
        let announced = self
            .announced_s
            .map_or(String::new(), |s| format!(" ({s:.2} s)"));
        warnings.push(format!(
            "the headers announce less audio{announced} than the stream holds; \
             the stream was decoded to its end"
        ));
        for mut packet in self.held.drain(..) {
            packet.trim_end = Duration::ZERO;
            self.ready.push_back(packet);
        }
    }
}

/// Decodes `path` whole, once, for callers that need every sample of every channel (the
/// loudness) and also the mono segments a sampled analysis reads.
///
/// `channels_sink` gets each packet's interleaved samples (those that are not audio replaced by
/// silence), its channel count, the stream's channel layout (speaker positions, where the
/// container gives them) and its rate. `segment_sink` gets what
/// [`decode_mono_segments`] would give for `sampling` (seconds, count), cut from the
/// stream instead of reached by seeking: a segment starts with the packet that holds its
/// start time, as an accurate seek starts it. For formats whose packets decode on their
/// own (PCM, FLAC) these are the very samples the seeking decode gives; codecs that carry
/// state from packet to packet (MP3, Vorbis, AAC) give their first samples of a segment as
/// decoded with that state instead of from a reset decoder. With no sampling, a file too
/// short to sample or one whose headers give no length, every mono sample goes to segment
/// 0 ([`Sampled::Whole`]); a segment that the stream ends inside, or whose first packet is
/// timed well after its start (where the seeking decode's seek would land wrong), gives
/// [`Sampled::Failed`] once the whole stream has been read, so the caller can analyse the
/// file whole.
pub fn decode_channels(
    path: &Path,
    stop: &StopSignal,
    sampling: Option<(f64, usize)>,
    mut channels_sink: impl FnMut(&[f32], usize, &Channels, u32) -> Result<()>,
    mut segment_sink: impl FnMut(usize, &[f32], u32) -> Result<()>,
) -> Result<Sampled> {
    let open = open_track(path, stop)?;
    let plan = sampling.and_then(|(seconds, count)| SegmentCuts::plan(&open, seconds, count));
    let Some(mut cuts) = plan else {
        let unknown = open.duration_s.is_none() && !open.length_unknown_said;
        let mut info = decode_packets(open, stop, |_, state, rate| {
            channels_sink(&state.interleaved, state.channels, &state.layout, rate)?;
            segment_sink(0, &state.mono, rate)
        })?;
        if let Some((seconds, count)) = sampling.filter(|_| unknown) {
            say_why_whole(&mut info, seconds, count);
        }
        return Ok(Sampled::Whole(info));
    };
    let info = decode_packets(open, stop, |packet, state, rate| {
        channels_sink(&state.interleaved, state.channels, &state.layout, rate)?;
        cuts.cut(packet, &state.mono, |index, mono| {
            segment_sink(index, mono, rate)
        })
    })?;
    Ok(match cuts.unfinished() {
        Some(reason) => Sampled::Failed { reason },
        None => Sampled::Segments {
            info,
            duration_s: cuts.duration_s,
        },
    })
}

/// Notes, on a stream whose headers gave no length and that was decoded whole, that it was
/// long enough to sample in `count` segments of `seconds`: its row is the whole file's,
/// which can differ from a sampled one, so it says why.
fn say_why_whole(info: &mut StreamInfo, seconds: f64, count: usize) {
    if segment_starts(info.duration_s(), seconds, count).is_some() {
        info.warnings.push(
            "the headers do not give the file's length (a stream written to a pipe, a \
             chained Ogg): analysed whole, not sampled"
                .into(),
        );
    }
}

/// Where the segments of a sampled analysis lie in a stream decoded whole, and how much of
/// each has been handed on.
struct SegmentCuts {
    duration_s: f64,
    /// Each segment's start in seconds and as a timestamp of the track's time base.
    starts: Vec<(f64, i64)>,
    /// Mono frames handed on so far, per segment.
    delivered: Vec<u64>,
    /// Frames in a segment.
    wanted: u64,
    time_base: TimeBase,
    rate: u32,
    /// Why the cuts cannot be trusted, once a segment's first packet lay well after its
    /// start (timestamps that do not begin at 0, a gap in the stream).
    misplaced: Option<String>,
}

impl SegmentCuts {
    /// The cuts [`decode_mono_segments`] would seek to, or `None` where it decodes whole.
    fn plan(open: &OpenTrack, seconds: f64, count: usize) -> Option<Self> {
        let duration_s = open.duration_s?;
        let rate = open.params.sample_rate.filter(|&r| r > 0)?;
        let time_base = open.time_base?;
        let starts = segment_starts(duration_s, seconds, count)?
            .into_iter()
            .map(|start| {
                let ts = time_base.calc_timestamp(Time::try_from_secs_f64(start)?)?;
                Some((start, ts.get()))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(SegmentCuts {
            duration_s,
            delivered: vec![0; starts.len()],
            starts,
            wanted: (seconds * f64::from(rate)).round() as u64,
            time_base,
            rate,
            misplaced: None,
        })
    }

    /// Hands `take` the part of a packet's mono samples that each segment reads.
    fn cut(
        &mut self,
        packet: &Packet,
        mono: &[f32],
        mut take: impl FnMut(usize, &[f32]) -> Result<()>,
    ) -> Result<()> {
        if self.misplaced.is_some() {
            return Ok(());
        }
        let end = packet.pts.get().saturating_add_unsigned(packet.dur.get());
        for (index, &(seconds, start)) in self.starts.iter().enumerate() {
            let delivered = &mut self.delivered[index];
            let before_start = *delivered == 0 && end <= start;
            if before_start || *delivered >= self.wanted {
                continue;
            }
            // The seeking decode refuses a seek that lands this far off; cut from here, the
            // segment would be other audio than its start's (a FLAC whose frames are
            // numbered from 500 gave its four segments from the same place, unnoticed).
            if *delivered == 0 {
                let at = self
                    .time_base
                    .calc_time(packet.pts)
                    .map_or(f64::NAN, |t| t.as_secs_f64());
                if at.is_nan() || at > seconds + SEEK_LATE_S {
                    self.misplaced = Some(format!(
                        "segment {} (from {seconds:.1} s) begins in a packet timed at {at:.1} s",
                        index + 1
                    ));
                    return Ok(());
                }
            }
            // From the segment's start, as the seeking decode cuts it.
            let lead = if *delivered == 0 {
                lead_samples(self.time_base, self.rate, packet.pts.get(), start)
            } else {
                0
            };
            let from = lead.min(mono.len());
            let count = (mono.len() - from).min((self.wanted - *delivered) as usize);
            *delivered += count as u64;
            take(index, &mono[from..from + count])?;
        }
        Ok(())
    }

    /// Why the sampling failed: a segment's audio was not where its start is, or the stream
    /// ended inside a segment.
    fn unfinished(&self) -> Option<String> {
        if let Some(reason) = &self.misplaced {
            return Some(reason.clone());
        }
        let index = self.delivered.iter().position(|&d| d < self.wanted)?;
        Some(format!(
            "the stream ends inside segment {} (from {:.1} s)",
            index + 1,
            self.starts[index].0
        ))
    }
}

/// A file source that asks the stop signal before every read, and fails the read once the
/// work should stop: symphonia scans for a frame sync (across gigabytes of zeros, say)
/// inside one call, where the decode loops cannot ask.
struct StopOnRead {
    inner: Box<dyn MediaSource>,
    stop: StopSignal,
}

impl StopOnRead {
    fn boxed(inner: Box<dyn MediaSource>, stop: &StopSignal) -> Box<dyn MediaSource> {
        Box::new(StopOnRead {
            inner,
            stop: stop.clone(),
        })
    }
}

impl std::io::Read for StopOnRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Err(e) = self.stop.check(Stage::Decode) {
            return Err(std::io::Error::other(e.to_string()));
        }
        self.inner.read(buf)
    }
}

impl std::io::Seek for StopOnRead {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

impl MediaSource for StopOnRead {
    fn is_seekable(&self) -> bool {
        self.inner.is_seekable()
    }

    fn byte_len(&self) -> Option<u64> {
        self.inner.byte_len()
    }
}

/// Samples of a packet starting at `pts` that come before `target` (timestamps of
/// `time_base`), at `rate`: what a segment drops from its first packet, so that it starts
/// at its time in every format (a WAV and a FLAC of the same audio gave different rows).
fn lead_samples(time_base: TimeBase, rate: u32, pts: i64, target: i64) -> usize {
    if pts >= target {
        return 0;
    }
    let seconds = |ts: i64| {
        time_base
            .calc_time(Timestamp::new(ts))
            .map_or(f64::NAN, |t| t.as_secs_f64())
    };
    let early = seconds(target) - seconds(pts);
    if early.is_finite() {
        (early * f64::from(rate)).round().max(0.0) as usize
    } else {
        0
    }
}

/// How far before its target an accurate seek may land (the rest is decoded and dropped)
/// and how far after it, in seconds, before the seek counts as having gone wrong.
const SEEK_EARLY_S: f64 = 10.0;
const SEEK_LATE_S: f64 = 1.0;

/// The most segments a sampled decode takes (`Sampling::MAX_SEGMENTS` is this).
pub const MAX_SEGMENTS: usize = 32;
/// The shortest segment a sampled decode takes, seconds: the decode's own floor, under
/// the analyzer's (`Sampling::MIN_SECONDS`).
pub const MIN_SEGMENT_SECONDS: f64 = 1.0;

/// Where the `count` segments of `seconds` each start in a file of `duration_s` seconds,
/// or `None` when the file is too short to be worth sampling and is analysed whole, or the
/// request is not one a sampled decode takes (`count` outside 1 to [`MAX_SEGMENTS`],
/// `seconds` not a positive number).
///
/// Segment i is centred at (i + 1) / (count + 1) of the file: the segments are spread
/// evenly and the intro and outro are left out. A file shorter than (count + 1) x
/// `seconds` is analysed whole: its segments would touch or overlap.
pub fn segment_starts(duration_s: f64, seconds: f64, count: usize) -> Option<Vec<f64>> {
    let worth_it = duration_s.is_finite()
        && seconds.is_finite()
        && seconds > 0.0
        && (1..=MAX_SEGMENTS).contains(&count)
        && duration_s >= (count + 1) as f64 * seconds;
    worth_it.then(|| {
        (0..count)
            .map(|i| duration_s * (i + 1) as f64 / (count + 1) as f64 - seconds / 2.0)
            .collect()
    })
}

/// How [`decode_mono_segments`] went.
#[derive(Debug, Clone, PartialEq)]
pub enum Sampled {
    /// Every segment decoded: `info.frames` counts the mono frames delivered, and
    /// `duration_s` is the file's length as its headers announce it.
    Segments {
        /// What was learned while decoding the segments.
        info: StreamInfo,
        /// Seconds in the whole file, from its headers.
        duration_s: f64,
    },
    /// The file was decoded whole into segment 0, exactly as [`decode_mono`] decodes it:
    /// it is too short to sample, or its headers do not give its length.
    Whole(StreamInfo),
    /// Sampling went wrong (`reason` says why): the caller throws away what the sink got
    /// and decodes the file from the start with [`decode_mono`].
    Failed {
        /// What went wrong.
        reason: String,
    },
}

/// Decodes `count` segments of `seconds` each, placed by [`segment_starts`], reaching each
/// one by seeking (symphonia's accurate seek, then a decoder reset) and never by decoding
/// what lies between. `sink` gets the segment's index (0, 1, ...) with each packet's mono
/// samples; a segment's first call is the first of its samples.
///
/// A file too short to sample, or whose headers give no length (an MP3 without a
/// Xing/Info header or a known bitrate), is decoded whole into segment 0 from the track
/// already open ([`Sampled::Whole`]): that is not damage, so no warning says so. Beyond
/// the length, nothing here trusts the headers. A seek that fails, that lands more than
/// [`SEEK_EARLY_S`] before or [`SEEK_LATE_S`] after its target (the targets only move
/// forward, so no seek goes back), a packet stream that breaks inside a segment, or a
/// segment that meets the end of the stream (a truncated file, a WAV header that
/// announces more than it holds) all give [`Sampled::Failed`] with the reason. Each
/// segment reads forward only and stops at its length or at the end of the stream, so
/// the work is bounded by the size of the file whatever its headers say.
///
/// How the formats seek (symphonia 0.6): WAV/AIFF compute the byte offset; FLAC
/// binary-searches its frames (helped by a seek table when there is one); MP3 scans frame
/// headers forward from where it is without decoding them (a Xing/Info TOC is not needed);
/// OGG bisects its pages; MP4/M4A reads its sample table.
pub fn decode_mono_segments(
    path: &Path,
    stop: &StopSignal,
    seconds: f64,
    count: usize,
    mut sink: impl FnMut(usize, &[f32], u32) -> Result<()>,
) -> Result<Sampled> {
    // Refused before the file is opened: 2^64 - 1 segments overflowed, 2^40 aborted on
    // their allocation, and 1 ns ones read as a stream that "holds no audio".
    let takes = (1..=MAX_SEGMENTS).contains(&count)
        && seconds.is_finite()
        && seconds >= MIN_SEGMENT_SECONDS;
    if !takes {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            Stage::Config,
            format!(
                "a sampled decode takes 1 to {MAX_SEGMENTS} segments of at least \
                 {MIN_SEGMENT_SECONDS} s (got {count} of {seconds} s)"
            ),
        ));
    }
    let open = open_track(path, stop)?;
    let planned = open
        .duration_s
        .and_then(|d| Some((d, segment_starts(d, seconds, count)?)));
    let Some((duration_s, starts)) = planned else {
        let unknown = open.duration_s.is_none() && !open.length_unknown_said;
        let mut info = decode_whole(open, stop, |mono, rate| sink(0, mono, rate))?;
        if unknown {
            say_why_whole(&mut info, seconds, count);
        }
        return Ok(Sampled::Whole(info));
    };
    let OpenTrack {
        mut format,
        track_id,
        params,
        mut decoder,
        time_base,
        budget,
        warnings,
        ..
    } = open;
    // A seek or read stopped inside the demuxer fails as damage would: the stop is what it
    // is, not a reason to decode the file whole.
    let failed = |reason: String| {
        stop.check(Stage::Decode)
            .map(|()| Sampled::Failed { reason })
    };
    let (Some(rate), Some(time_base)) = (params.sample_rate.filter(|&r| r > 0), time_base) else {
        return failed("its headers give no sample rate or time base".into());
    };
    // Mono segments only: the speaker layout is not read.
    let mut state = Decoding::new(
        budget,
        true,
        None,
        StreamInfo {
            codec: decoder.codec_info().short_name.to_string(),
            sample_rate: rate,
            channels: params.channels.as_ref().map_or(0, |c| c.count() as u16),
            frames: 0,
            warnings,
        },
    );
    let wanted = (seconds * f64::from(rate)).round() as u64;
    let seconds_at = |ts| {
        time_base
            .calc_time(ts)
            .map_or(f64::NAN, |t| t.as_secs_f64())
    };
    for (index, &start) in starts.iter().enumerate() {
        stop.check(Stage::Decode)?;
        let Some(time) = Time::try_from_secs_f64(start) else {
            return failed(format!("{start} s is not a time to seek to"));
        };
        let to = SeekTo::Time {
            time,
            track_id: Some(track_id),
        };
        let seeked = match format.seek(SeekMode::Accurate, to) {
            Ok(seeked) => seeked,
            Err(e) => return failed(format!("seeking to {start:.1} s failed ({e})")),
        };
        let landed = seconds_at(seeked.actual_ts);
        let near = landed >= start - SEEK_EARLY_S && landed <= start + SEEK_LATE_S;
        if !near {
            return failed(format!("a seek to {start:.1} s landed at {landed:.1} s"));
        }
        decoder.reset();
        state.mixer = MonoMixer::default();
        let mut delivered = 0u64;
        while delivered < wanted {
            stop.check(Stage::Decode)?;
            let packet = match format.next_packet() {
                Ok(Some(packet)) => packet,
                Ok(None) => {
                    return failed(format!(
                        "the stream ends inside segment {} (from {start:.1} s)",
                        index + 1
                    ));
                }
                Err(e) => {
                    return failed(format!(
                        "reading segment {} (from {start:.1} s) failed ({e})",
                        index + 1
                    ));
                }
            };
            if packet.track_id != track_id {
                continue;
            }
            let before_target = packet.pts.get().saturating_add_unsigned(packet.dur.get())
                <= seeked.required_ts.get();
            // The first packet of the segment may start before the target (a FLAC frame, a
            // WAV packet): its samples before the target are dropped, so that the segment
            // starts at its time in every format (a WAV and a FLAC of the same audio gave
            // different rows).
            let lead = if delivered == 0 {
                lead_samples(time_base, rate, packet.pts.get(), seeked.required_ts.get())
            } else {
                0
            };
            let buffer = match decoder.decode(&packet) {
                Ok(buffer) => buffer,
                Err(SymphoniaError::DecodeError(_)) | Err(SymphoniaError::IoError(_)) => {
                    if state.skip_bad_packet() {
                        continue;
                    }
                    return failed(format!("segment {} does not decode", index + 1));
                }
                Err(e) => return failed(format!("decoding segment {} failed ({e})", index + 1)),
            };
            match state.mix(&buffer)? {
                Mixed::Samples(_) if before_target => {}
                Mixed::Samples(rate) => {
                    let from = lead.min(state.mono.len());
                    let take = (state.mono.len() - from).min((wanted - delivered) as usize);
                    delivered += take as u64;
                    state.info.frames += take as u64;
                    sink(index, &state.mono[from..from + take], rate)?;
                }
                Mixed::Nothing => {}
                Mixed::Stop => return failed("the stream changes its sample rate".into()),
            }
        }
    }
    Ok(Sampled::Segments {
        info: state.finish()?,
        duration_s,
    })
}

/// What [`Decoding::mix`] made of one decoded buffer.
enum Mixed {
    /// Mono samples at this rate, in [`Decoding::mono`].
    Samples(u32),
    /// No samples in this buffer.
    Nothing,
    /// The stream changed under us: decoding ends here.
    Stop,
}

/// The state of one [`decode_mono`]: what it has learned, its buffers, and its counts of
/// damage, with one method per step of the packet loop.
struct Decoding {
    info: StreamInfo,
    /// What the file has decoded, against what it may before it counts as a bomb.
    budget: SampleBudget,
    /// The last packet's samples, interleaved, those that are not audio replaced by silence.
    interleaved: Vec<f32>,
    /// The last packet's channel count.
    channels: usize,
    /// The channel layout (speaker positions) for the loudness weights: the header's where
    /// [`wav_layout`] reads one, else the first packet's.
    layout: Channels,
    mono: Vec<f32>,
    /// Mixes each packet down to `mono`; a sampled decode starts a fresh one per segment.
    mixer: MonoMixer,
    bad_packets: usize,
    bad_in_a_row: usize,
    non_finite: u64,
    /// Whether the headers announce the stream's length. Without one (a WAV written to a
    /// pipe, `ffmpeg -f wav - > x.wav`, whose data chunk says 0xFFFFFFFF bytes), running
    /// into the end of the file is how the stream ends, not a sign that it was cut.
    length_announced: bool,
    /// Whether the reader's last word was `ResetRequired`: the stream moved on to another
    /// link (a chained Ogg), whose track the caller may take up.
    reset: bool,
}

impl Decoding {
    fn new(
        budget: SampleBudget,
        length_announced: bool,
        layout: Option<Channels>,
        info: StreamInfo,
    ) -> Self {
        Decoding {
            info,
            budget,
            interleaved: Vec::new(),
            channels: 1,
            layout: layout.unwrap_or(Channels::None),
            mono: Vec::new(),
            mixer: MonoMixer::default(),
            bad_packets: 0,
            bad_in_a_row: 0,
            non_finite: 0,
            length_announced,
            reset: false,
        }
    }

    /// The next packet, or `None` at the end of the stream (a cut-off file or a parameter
    /// change ends it with a warning).
    fn next_packet(&mut self, format: &mut dyn FormatReader) -> Result<Option<Packet>> {
        match format.next_packet() {
            Ok(packet) => Ok(packet),
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                // Demuxers report a cut-off file as an unexpected end of stream.
                if self.info.frames > 0 && self.length_announced {
                    self.info
                        .warnings
                        .push("the stream ends early (truncated file)".into());
                }
                Ok(None)
            }
            Err(SymphoniaError::ResetRequired) => {
                self.reset = true;
                Ok(None)
            }
            Err(e) => {
                self.stop_early("demuxing", &e)?;
                Ok(None)
            }
        }
    }

    /// A failure that ends the stream (`what` is the step that failed): an error while
    /// nothing has decoded yet, else a warning, keeping what did.
    fn stop_early(&mut self, what: &str, e: &SymphoniaError) -> Result<()> {
        if self.info.frames == 0 {
            return Err(Error::new(
                ErrorKind::CorruptStream,
                Stage::Decode,
                e.to_string(),
            ));
        }
        self.info
            .warnings
            .push(format!("{what} stopped early: {e}"));
        Ok(())
    }

    /// Counts a packet that failed to decode; whether to go on (false after too many in
    /// a row, with a warning).
    fn skip_bad_packet(&mut self) -> bool {
        self.bad_packets += 1;
        self.bad_in_a_row += 1;
        if self.bad_in_a_row >= MAX_CONSECUTIVE_BAD_PACKETS {
            self.info.warnings.push(format!(
                "{} packets in a row failed; decoding stopped there",
                self.bad_in_a_row
            ));
            return false;
        }
        true
    }

    /// Mixes a decoded buffer down to mono into `self.mono` (the caller counts the frames
    /// it delivers). An error when the buffer's rate is out of range or the file's sample
    /// budget is spent.
    fn mix(&mut self, buffer: &GenericAudioBufferRef<'_>) -> Result<Mixed> {
        self.bad_in_a_row = 0;
        let channels = buffer.spec().channels().count().max(1);
        let rate = buffer.spec().rate();
        if !self
            .budget
            .spend(buffer.frames() as u64, channels as u64, rate)
        {
            return Err(Error::new(
                ErrorKind::ResourceLimit,
                Stage::Decode,
                format!(
                    "the stream decodes to more audio than a file of its size can hold \
                     (over {MAX_SAMPLES_PER_BYTE} samples per byte, past the {} hours any \
                     file may): a decompression bomb or a header that lies",
                    FREE_SECONDS / 3_600
                ),
            ));
        }
        let info = &mut self.info;
        if info.sample_rate == 0 {
            check_sample_rate(rate)?;
            info.sample_rate = rate;
        }
        if info.channels == 0 {
            info.channels = channels as u16;
        }
        if rate != info.sample_rate {
            info.warnings.push(format!(
                "the sample rate changes from {} to {rate} Hz; decoding stopped there",
                info.sample_rate
            ));
            return Ok(Mixed::Stop);
        }
        buffer.copy_to_vec_interleaved(&mut self.interleaved);
        self.channels = channels;
        if self.layout == Channels::None {
            self.layout = buffer.spec().channels().clone();
        }
        let non_finite = self.mixer.mix(&self.interleaved, channels, &mut self.mono);
        if non_finite > 0 {
            self.non_finite += non_finite;
            for sample in self.interleaved.iter_mut().filter(|s| !is_audio(**s)) {
                *sample = 0.0;
            }
        }
        if self.mono.is_empty() {
            return Ok(Mixed::Nothing);
        }
        Ok(Mixed::Samples(rate))
    }

    /// The stream's info once the loop has ended: the damage survived as warnings, or an
    /// error when nothing usable decoded.
    fn finish(self) -> Result<StreamInfo> {
        let Decoding {
            mut info,
            bad_packets,
            non_finite,
            ..
        } = self;
        if bad_packets > 0 {
            info.warnings
                .push(format!("{bad_packets} damaged packets were skipped"));
        }
        if non_finite > 0 {
            info.warnings.push(format!(
                "{non_finite} samples that are NaN, infinite or beyond ±{MAX_SAMPLE:e} (audio is \
                 scaled to ±1) were replaced by silence"
            ));
        }
        if info.frames == 0 {
            let reason = if bad_packets > 0 {
                format!("no packet could be decoded ({bad_packets} failed)")
            } else {
                "the stream holds no audio".to_string()
            };
            return Err(Error::new(ErrorKind::CorruptStream, Stage::Decode, reason));
        }
        if info.sample_rate == 0 {
            return Err(Error::new(
                ErrorKind::UnsupportedFormat,
                Stage::Probe,
                "the stream has no sample rate",
            ));
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Once the file's work should stop, its next read fails: symphonia's scan for a sync
    /// across a long stretch of zeros (3 GiB between two MP3 streams) ran 3 s past a 0.5 s
    /// limit, and as long past a cancel, inside one call the decode loops could not stop.
    #[test]
    fn a_read_after_the_stop_fails() {
        use std::io::Read;
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = StopSignal::never().with_cancel_flag(flag.clone());
        let bytes = std::io::Cursor::new(vec![0u8; 64]);
        let mut source = StopOnRead::boxed(
            Box::new(symphonia::core::io::ReadOnlySource::new(bytes)),
            &stop,
        );
        let mut buf = [0u8; 16];
        assert_eq!(source.read(&mut buf).unwrap(), 16);
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
        let e = source.read(&mut buf).unwrap_err();
        assert!(e.to_string().contains("stopped on request"), "{e}");
    }

    /// Whether a file of `bytes` bytes may decode `seconds` of `channels` channels at
    /// `rate` Hz, spent in one-second buffers.
    fn allows(bytes: u64, seconds: u64, rate: u32, channels: u64) -> bool {
        let mut budget = SampleBudget::new(bytes);
        (0..seconds).all(|_| budget.spend(u64::from(rate), channels, rate))
    }

    #[test]
    fn any_file_may_decode_two_hours_and_past_them_its_size_decides() {
        let two_hours = FREE_SECONDS;
        // A 17 KB FLAC of 60 s of silence, and two hours of it, at any rate up to 48 kHz.
        assert!(allows(17_000, 60, 44_100, 2));
        assert!(allows(17_000, two_hours, 48_000, 2));
        assert!(allows(1, two_hours, 4_000, 1));
        // Past two hours (of audio, or of 48 kHz stereo samples), the size decides.
        assert!(!allows(17_000, two_hours + 1, 4_000, 1));
        assert!(!allows(17_000, two_hours / 4, 192_000, 8));
        let three_hours_at_44k: u64 = 3 * 3_600 * 44_100 * 2;
        assert!(!allows(1_000_000, 3 * 3_600, 44_100, 2));
        let bytes = three_hours_at_44k.div_ceil(MAX_SAMPLES_PER_BYTE);
        assert!(allows(bytes, 3 * 3_600, 44_100, 2));
        assert_eq!(sample_budget(1), FREE_SAMPLES);
        assert_eq!(sample_budget(1 << 30), (1 << 30) * MAX_SAMPLES_PER_BYTE);
    }
}
