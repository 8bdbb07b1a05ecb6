//! Why a file is refused before its audio is read: containers this analyzer does not read,
//! codecs it has no decoder for, and symphonia's probe errors put in a user's words.

use symphonia::core::codecs::audio::AudioCodecId;
use symphonia::core::errors::Error as SymphoniaError;

use super::MAX_DECODER_CHANNELS;
use crate::error::{Error, ErrorKind, Stage};

/// Containers this analyzer does not read, known by their first bytes (the magic, the
/// offset it sits at, the name to give). They are refused before the probe, which would
/// otherwise scan past their headers for a marker it knows: in a Matroska file holding FLAC
/// it finds the codec's `fLaC` header and reports a FLAC stream that "holds no audio"; in
/// others it runs out of file and blames the file's length.
const UNREAD_CONTAINERS: [(&[u8], usize, &str); 9] = [
    (b"AIFF", 8, "AIFF"),
    (b"AIFC", 8, "AIFF-C"),
    (b"caff", 0, "Core Audio (CAF)"),
    (b"\x1a\x45\xdf\xa3", 0, "Matroska/WebM"),
    (b"wvpk", 0, "WavPack"),
    (b"MAC ", 0, "Monkey's Audio (APE)"),
    (b"RF64", 0, "RF64 (the WAV variant for files over 4 GiB)"),
    // The GUIDs that open a Sony Wave64 and an ASF (WMA) file.
    (
        b"riff\x2e\x91\xcf\x11\xa5\xd6\x28\xdb",
        0,
        "Sony Wave64 (W64)",
    ),
    (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", 0, "ASF (WMA)"),
];

/// Bare streams this analyzer does not decode, known by their first bytes once the open has
/// failed: the probe's MPEG reader took a DTS stream for MPEG layer I/II audio and found no
/// reader for AC-3, AMR or Speex. Named only after a failed open, since a sync word of two
/// or four bytes may open a file the probe reads (an MP3 behind two bytes of junk).
const UNREAD_STREAMS: [(&[u8], usize, &str); 7] = [
    (b"\x0b\x77", 0, "AC-3/E-AC-3 (Dolby Digital)"),
    (b"\x7f\xfe\x80\x01", 0, "DTS"),
    (b"\xfe\x7f\x01\x80", 0, "DTS"),
    (b"\x1f\xff\xe8\x00", 0, "DTS"),
    (b"\xff\x1f\x00\xe8", 0, "DTS"),
    (b"#!AMR", 0, "AMR"),
    // An Ogg page whose first packet is a Speex header.
    (b"Speex   ", 28, "Ogg Speex"),
];

/// Why the file is refused when its first bytes (`head`) name a container this analyzer
/// does not read ([`UNREAD_CONTAINERS`]).
pub(super) fn unsupported_container(head: &[u8]) -> Option<Error> {
    named_by_magic(&UNREAD_CONTAINERS, head)
}

/// Why a file that failed to open is refused, when its first bytes (`head`) are those of a
/// bare stream this analyzer does not decode ([`UNREAD_STREAMS`]).
pub(super) fn unsupported_stream(head: &[u8]) -> Option<Error> {
    named_by_magic(&UNREAD_STREAMS, head)
}

/// The refusal for the first of `known` whose magic `head` holds at its offset.
fn named_by_magic(known: &[(&[u8], usize, &str)], head: &[u8]) -> Option<Error> {
    let (_, _, name) = known.iter().find(|(magic, at, _)| {
        let placed = match *at {
            0 => true,
            8 => head.starts_with(b"FORM"),
            _ => head.starts_with(b"OggS"),
        };
        head.get(*at..at + magic.len()) == Some(*magic) && placed
    })?;
    Some(Error::new(
        ErrorKind::UnsupportedFormat,
        Stage::Probe,
        format!("{name} files are not decoded by this analyzer (convert to WAV or FLAC)"),
    ))
}

/// The codec a WAV's `fmt ` format tag names, where symphonia reads no such WAV and says
/// only "unsupported wave format" (broadcast archives keep MPEG audio in WAV wrappers).
pub(super) fn wav_codec(tag: u16) -> Option<&'static str> {
    Some(match tag {
        0x0050 => "MPEG layer I/II",
        0x0055 => "MP3",
        0x0092 | 0x2000 => "AC-3 (Dolby Digital)",
        0x2001 => "DTS",
        0x00FF | 0x1600..=0x1610 | 0x4143 => "AAC",
        0x0160..=0x0163 => "WMA",
        0x674F..=0x6751 | 0x6771 => "Vorbis",
        0xF1AC => "FLAC",
        0x704F => "Opus",
        _ => return None,
    })
}

/// Why an extensible WAV of A-law or mu-law samples (sub-format 6 or 7) is refused:
/// symphonia reads those samples under a plain header only (it gives mu-law another GUID,
/// and its decoder refuses the width there), and said "malformed stream".
pub(super) fn extensible_g711(sub_format: u16) -> Option<Error> {
    matches!(sub_format, 6 | 7).then(|| {
        Error::new(
            ErrorKind::UnsupportedFormat,
            Stage::Probe,
            "A-law or mu-law audio under an extensible WAV header is not decoded by this \
             analyzer (under a plain header it is; convert with `ffmpeg -i IN -c:a pcm_s16le \
             OUT.wav`)",
        )
    })
}

/// Why a WAV of `tag`'s codec is refused ([`wav_codec`]).
pub(super) fn wav_codec_refusal(tag: u16) -> Option<Error> {
    let name = wav_codec(tag)?;
    Some(Error::new(
        ErrorKind::UnsupportedFormat,
        Stage::Probe,
        format!(
            "{name} audio in a WAV wrapper (format tag {tag:#06x}) is not decoded by this \
             analyzer (convert to WAV PCM or FLAC)"
        ),
    ))
}

/// Why a WAV of `count` channels, more than the decoder reads, is refused. Checked before
/// the probe: symphonia read an extensible header of 33 channels as 1 (the count modulo
/// 32) and one of 40 with an 8-bit mask as 8, an `ok` row of the wrong audio.
pub(super) fn too_many_wav_channels(count: u16) -> Option<Error> {
    (u32::from(count) > MAX_DECODER_CHANNELS).then(|| {
        Error::new(
            ErrorKind::UnsupportedFormat,
            Stage::Probe,
            format!(
                "the header's channel count is not one the decoder can read (1 to \
                 {MAX_DECODER_CHANNELS} channels are read; the header says {count})"
            ),
        )
    })
}

/// An error for a codec that has no decoder here, naming it where it is a well-known one
/// (symphonia's own message says only "unsupported audio codec").
pub(super) fn unsupported_codec(codec: AudioCodecId, e: &SymphoniaError) -> Error {
    use symphonia::core::codecs::audio::well_known::*;
    let name = match codec {
        CODEC_ID_OPUS => Some("Opus"),
        CODEC_ID_ALAC => Some("ALAC (Apple Lossless)"),
        CODEC_ID_MP1 | CODEC_ID_MP2 => Some("MPEG layer I/II"),
        CODEC_ID_AC3 | CODEC_ID_EAC3 | CODEC_ID_AC4 => Some("Dolby Digital (AC-3)"),
        CODEC_ID_DCA => Some("DTS"),
        CODEC_ID_WMA => Some("WMA"),
        CODEC_ID_SPEEX => Some("Speex"),
        CODEC_ID_WAVPACK => Some("WavPack"),
        CODEC_ID_MONKEYS_AUDIO => Some("Monkey's Audio (APE)"),
        CODEC_ID_TTA => Some("TTA"),
        CODEC_ID_TRUEHD => Some("Dolby TrueHD"),
        CODEC_ID_ADPCM_G722
        | CODEC_ID_ADPCM_G726
        | CODEC_ID_ADPCM_G726LE
        | CODEC_ID_ADPCM_MS
        | CODEC_ID_ADPCM_IMA_WAV
        | CODEC_ID_ADPCM_IMA_QT => Some("ADPCM"),
        _ => None,
    };
    // symphonia's AAC decoder reads stereo AAC-LC only, and says "aac too complex".
    if codec == CODEC_ID_AAC && e.to_string().contains("too complex") {
        return Error::new(
            ErrorKind::UnsupportedFormat,
            Stage::Probe,
            format!(
                "AAC of more than two channels, HE-AAC (SBR) or a profile other than AAC-LC \
                 is not decoded by this analyzer (convert to WAV or FLAC; {e})"
            ),
        );
    }
    let reason = match name {
        Some(name) => {
            format!("{name} audio is not decoded by this analyzer (convert to WAV or FLAC; {e})")
        }
        None => format!("{e} (codec id {codec})"),
    };
    Error::new(ErrorKind::UnsupportedFormat, Stage::Probe, reason)
}

pub(super) fn probe_error(e: &SymphoniaError) -> Error {
    match e {
        SymphoniaError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::new(
                ErrorKind::UnsupportedFormat,
                Stage::Probe,
                "the file ends before its headers do: it is empty, too short to recognise, \
                 or a header or tag claims more bytes than the file holds",
            )
        }
        SymphoniaError::IoError(io) => {
            Error::new(ErrorKind::Unreadable, Stage::Probe, io.to_string())
        }
        // An extensible WAV of more channels than the plain reader's 26 fails on its mask
        // ("too many channels in mask"), which blamed the mask, not the count.
        SymphoniaError::DecodeError(what) | SymphoniaError::Unsupported(what)
            if what.contains("channel count") || what.contains("channels in mask") =>
        {
            Error::new(
                ErrorKind::UnsupportedFormat,
                Stage::Probe,
                format!(
                    "the header's channel count is not one the decoder can read \
                     (1 to {MAX_DECODER_CHANNELS} channels are read; {what})"
                ),
            )
        }
        SymphoniaError::Unsupported(what) => Error::new(
            ErrorKind::UnsupportedFormat,
            Stage::Probe,
            format!("not a supported audio format ({what})"),
        ),
        // A WAV of 12, 20 or 48-bit integers or 16-bit floats is valid, and only not read
        // here: it was called a corrupt stream.
        SymphoniaError::DecodeError(what)
            if what.contains("bits per sample") && !what.contains("valid bits") =>
        {
            Error::new(
                ErrorKind::UnsupportedFormat,
                Stage::Probe,
                format!("a sample width this analyzer does not decode ({what})"),
            )
        }
        // symphonia's Ogg reader holds no packet over 16 MiB: a valid file whose comment
        // header carries cover art past about 12 MB (base64 in METADATA_BLOCK_PICTURE)
        // was called corrupt.
        SymphoniaError::DecodeError(what) if what.contains("packet buffer would exceed") => {
            Error::new(
                ErrorKind::UnsupportedFormat,
                Stage::Probe,
                "an Ogg packet over the reader's 16 MiB limit (cover art of more than about \
                 12 MB in the comment header?): not read",
            )
        }
        other => Error::new(ErrorKind::CorruptStream, Stage::Probe, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use symphonia::core::codecs::audio::well_known::{CODEC_ID_AAC, CODEC_ID_ALAC, CODEC_ID_OPUS};

    /// A Wave64 or WMA file is named by its opening GUID (they were "no suitable format
    /// reader found"); a WAV of a sample width symphonia does not read is unsupported, not
    /// corrupt, while a header at odds with itself stays corrupt.
    #[test]
    fn wave64_wma_and_odd_sample_widths_are_named() {
        let mut w64 = b"riff\x2e\x91\xcf\x11\xa5\xd6\x28\xdb\x04\xc1\x00\x00".to_vec();
        w64.extend([0u8; 32]);
        let named = unsupported_container(&w64).unwrap();
        assert!(named.to_string().contains("Wave64"), "{named}");
        let asf = b"\x30\x26\xb2\x75\x8e\x66\xcf\x11\xa6\xd9\x00\xaa\x00\x62\xce\x6c";
        assert!(
            unsupported_container(asf)
                .unwrap()
                .to_string()
                .contains("WMA")
        );
        let width = probe_error(&SymphoniaError::DecodeError(
            "wav: bits per sample for fmt_pcm must be 8, 16, 24 or 32 bits",
        ));
        assert_eq!(width.kind(), ErrorKind::UnsupportedFormat);
        assert!(
            width.reason().contains("sample width"),
            "{}",
            width.reason()
        );
        let odd = probe_error(&SymphoniaError::DecodeError(
            "wav: valid bits per sample for fmt_ext PCM sub-type must be <= bits per sample",
        ));
        assert_eq!(odd.kind(), ErrorKind::CorruptStream);
    }

    /// Bare AC-3, DTS (four sync words) and AMR streams and an Ogg Speex file are named by
    /// their first bytes: the probe took the DTS stream for MPEG audio, called the Speex
    /// file cut short and found no reader for the others. "Speex" elsewhere than in an
    /// Ogg page's first packet names nothing.
    #[test]
    fn bare_streams_and_ogg_speex_are_named() {
        let named = |head: &[u8]| unsupported_stream(head).map(|e| e.reason().to_string());
        assert!(unsupported_container(b"\x0b\x77\x12\x34").is_none());
        for (head, name) in [
            (&b"\x0b\x77\x12\x34"[..], "AC-3"),
            (b"\x7f\xfe\x80\x01\x00", "DTS"),
            (b"\xfe\x7f\x01\x80\x00", "DTS"),
            (b"\x1f\xff\xe8\x00\x00", "DTS"),
            (b"\xff\x1f\x00\xe8\x00", "DTS"),
            (b"#!AMR\n", "AMR"),
        ] {
            let reason = named(head).unwrap_or_else(|| panic!("{name}: not named"));
            assert!(reason.contains(&format!(": {name}")), "{reason}");
        }
        let mut speex = b"OggS".to_vec();
        speex.resize(28, 0);
        speex.extend(b"Speex   ");
        assert!(named(&speex).unwrap().contains(": Ogg Speex files"));
        speex[..4].copy_from_slice(b"RIFF");
        assert_eq!(named(&speex), None);
    }

    /// An extensible WAV of more channels than the decoder reads is refused for its count,
    /// as a plain one is (it blamed the mask).
    #[test]
    fn too_many_channels_is_said_for_either_header() {
        for e in [
            SymphoniaError::Unsupported("wav: too many channels in mask for fmt_ext"),
            SymphoniaError::DecodeError("riff: invalid channel count"),
        ] {
            let refused = probe_error(&e);
            assert_eq!(refused.kind(), ErrorKind::UnsupportedFormat);
            assert!(
                refused.reason().contains("1 to 26 channels are read"),
                "{}",
                refused.reason()
            );
        }
    }

    /// A packet past the Ogg reader's limit is a limit of the reader, named as one: the
    /// file (cover art of 13 MB) was called corrupt.
    #[test]
    fn an_ogg_packet_past_the_readers_limit_is_unsupported_not_corrupt() {
        let error = probe_error(&SymphoniaError::DecodeError(
            "ogg: packet buffer would exceed max size",
        ));
        assert_eq!(error.kind(), ErrorKind::UnsupportedFormat);
        assert!(
            error.reason().contains("16 MiB limit"),
            "{}",
            error.reason()
        );
        let other = probe_error(&SymphoniaError::DecodeError("ogg: bad page"));
        assert_eq!(other.kind(), ErrorKind::CorruptStream);
    }

    /// An AAC stream symphonia's decoder does not take (5.1, HE-AAC) says what it is, not
    /// only "aac too complex".
    #[test]
    fn aac_past_the_decoders_reach_says_what_it_is() {
        let e = SymphoniaError::Unsupported("aac: aac too complex");
        let refused = unsupported_codec(CODEC_ID_AAC, &e);
        assert_eq!(refused.kind(), ErrorKind::UnsupportedFormat);
        assert!(
            refused
                .reason()
                .contains("AAC of more than two channels, HE-AAC (SBR)"),
            "{}",
            refused.reason()
        );
    }

    /// symphonia says only "unsupported audio codec"; the row names the codec where it is
    /// a well-known one, and gives its id otherwise.
    #[test]
    fn an_unsupported_codec_is_named() {
        let e = SymphoniaError::Unsupported("core (codec): unsupported audio codec");
        let opus = unsupported_codec(CODEC_ID_OPUS, &e);
        assert_eq!(opus.kind(), ErrorKind::UnsupportedFormat);
        assert!(
            opus.to_string().contains("Opus audio is not decoded"),
            "{opus}"
        );
        let alac = unsupported_codec(CODEC_ID_ALAC, &e);
        assert!(alac.to_string().contains("ALAC"), "{alac}");
        let fourcc = symphonia::core::common::FourCc::new(*b"abcd");
        let other = unsupported_codec(AudioCodecId::new(fourcc), &e);
        assert!(other.to_string().contains("codec id 0x"), "{other}");
    }
}
