//! An MP3 cut short: the Xing/Info header that LAME (and ffmpeg through it) writes in the
//! stream's first frame counts the stream's bytes, and a file holding fewer was cut off
//! (an unfinished download, a copy that ran out of space).
//!
//! symphonia takes the length from the header's frame count and does not look at the
//! bytes: a sampled analysis, which reads four segments and never the end, gave the row the
//! announced length without a word (an MP3 cut to 88 % of its bytes said 240 s, and `--full`
//! said 211 s, also without a word). Only the first frame's headers are read, and the
//! search stops at the stream's first frame (one whose successor lies where its length
//! says): an MP3 without the header costs a few KB read, not the whole search window.

use std::fs::File;

use super::wav_sizes::read_at;

/// How far past an ID3v2 tag (or the file's start) the first frame may lie: encoders put
/// it right after the tag, and padding or junk is passed over (70 KB of zeros hid a cut).
const SEARCH_BYTES: u64 = 1024 * 1024;

/// What is read first: the first frame of nearly every MP3 lies within it, so the whole
/// search window is read only for a file with padding or junk before its stream.
const FIRST_READ_BYTES: u64 = 64 * 1024;

/// Frames a stream may lack against its header before it counts as cut short: a frame or
/// two of difference is an encoder's rounding, not a missing end. (A slack in bytes, 16
/// KiB, hid 15 s cut from an 8 kbit/s file.)
const SLACK_FRAMES: u64 = 2;

/// The most bytes a layer III frame holds (320 kbit/s at 32 kHz, padded), and the fewest
/// (8 kbit/s at 24 kHz): a header whose bytes per frame lie outside is not believed (a
/// byte count of 0xFFFFFFFF called a whole file cut short).
const FRAME_BYTES: std::ops::RangeInclusive<u64> = 24..=1441;

/// The bytes the Xing/Info header of `file` (of `file_len` bytes) announces and those the
/// file holds from that frame on, where it holds fewer by more than [`SLACK_FRAMES`]
/// frames; `None` for any other file (no MP3, no header, no frame and byte counts, or
/// counts no stream has).
pub(super) fn cut_short(file: &mut File, file_len: u64) -> Option<(u64, u64)> {
    let start = id3v2_end(file)?;
    let (frame, (frames, announced)) = first_frame(file, start, file_len)?;
    let per_frame = announced / frames;
    if !FRAME_BYTES.contains(&per_frame) {
        return None;
    }
    let held = file_len - frame;
    let short = announced.saturating_sub(held);
    (short > SLACK_FRAMES * per_frame).then_some((announced, held))
}

/// Where the stream's first frame lies in `file` (searched from `start`), and the counts
/// of the Xing/Info header it holds; `None` without a frame or without the header there.
fn first_frame(file: &mut File, start: u64, file_len: u64) -> Option<(u64, (u64, u64))> {
    let rest = file_len.saturating_sub(start);
    for len in [FIRST_READ_BYTES.min(rest), SEARCH_BYTES.min(rest)] {
        let mut window = vec![0u8; usize::try_from(len).ok()?];
        read_at(file, start, &mut window)?;
        match find_frame(&window, len == rest) {
            Search::Found(at) => return Some((start + at as u64, xing_counts(&window[at..])?)),
            Search::Nothing => return None,
            Search::ReadMore if len == SEARCH_BYTES.min(rest) => return None,
            Search::ReadMore => {}
        }
    }
    None
}

/// What a look for the first frame in a window found.
#[derive(Debug, PartialEq)]
enum Search {
    /// A frame at this offset, followed by another where its length says (or by the file's
    /// end): the stream starts here.
    Found(usize),
    /// No frame: the window is the rest of the file.
    Nothing,
    /// No confirmed frame in the window, but the file goes on past it.
    ReadMore,
}

/// Frames that must follow each other, each where the one before says, for a frame to be
/// taken for the stream's first: two frame headers a frame apart turned up in junk before
/// a stream (and hid that it was cut short); four do not.
const CHAIN_FRAMES: usize = 4;

/// The first frame of `window`, confirmed by the [`CHAIN_FRAMES`] frame headers that follow
/// it (a lone header or two in junk or cover art is not a stream); `to_end` when the window
/// ends where the file does, so a chain ending there needs no more frames.
fn find_frame(window: &[u8], to_end: bool) -> Search {
    for at in 0..window.len() {
        let Some(first) = FrameHeader::parse(&window[at..]) else {
            continue;
        };
        let mut next = at + first.bytes;
        let mut confirmed = true;
        for _ in 1..CHAIN_FRAMES {
            if next == window.len() && to_end {
                break;
            }
            match window.get(next..).and_then(FrameHeader::parse) {
                Some(following) if following.same_stream(&first) => next += following.bytes,
                // The chain runs past the window: read further before deciding.
                None if next + 4 > window.len() && !to_end => return Search::ReadMore,
                _ => {
                    confirmed = false;
                    break;
                }
            }
        }
        if confirmed {
            return Search::Found(at);
        }
    }
    if to_end {
        Search::Nothing
    } else {
        Search::ReadMore
    }
}

/// The fields of an MPEG audio layer III frame header that say how long the frame is.
#[derive(Debug, PartialEq)]
struct FrameHeader {
    /// 3 for MPEG-1, 2 for MPEG-2, 0 for MPEG-2.5.
    version: u8,
    sample_rate: u32,
    /// The whole frame, header included.
    bytes: usize,
}

impl FrameHeader {
    /// The layer III frame header that `bytes` starts with (free-format and reserved
    /// values refused).
    fn parse(bytes: &[u8]) -> Option<FrameHeader> {
        let &[sync, b1, b2, _, ..] = bytes else {
            return None;
        };
        let version = (b1 >> 3) & 3;
        let layer = (b1 >> 1) & 3;
        if sync != 0xFF || b1 & 0xE0 != 0xE0 || version == 1 || layer != 1 {
            return None;
        }
        let (bitrate_index, rate_index) = (usize::from(b2 >> 4), usize::from((b2 >> 2) & 3));
        if matches!(bitrate_index, 0 | 15) || rate_index == 3 {
            return None;
        }
        const MPEG1_KBPS: [u32; 15] = [
            0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
        ];
        const MPEG2_KBPS: [u32; 15] =
            [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
        let (kbps, rates, per_kbit) = match version {
            3 => (MPEG1_KBPS, [44_100, 48_000, 32_000], 144_000),
            2 => (MPEG2_KBPS, [22_050, 24_000, 16_000], 72_000),
            _ => (MPEG2_KBPS, [11_025, 12_000, 8_000], 72_000),
        };
        let sample_rate = rates[rate_index];
        let padding = u32::from((b2 >> 1) & 1);
        let bytes = per_kbit * kbps[bitrate_index] / sample_rate + padding;
        Some(FrameHeader {
            version,
            sample_rate,
            bytes: usize::try_from(bytes).ok()?,
        })
    }

    /// Whether `other` can follow this frame in one stream (the bit rate may change).
    fn same_stream(&self, other: &FrameHeader) -> bool {
        self.version == other.version && self.sample_rate == other.sample_rate
    }
}

/// Where an ID3v2 tag at the file's start ends (0 without one); `None` when it cannot be
/// read.
fn id3v2_end(file: &mut File) -> Option<u64> {
    let mut header = [0u8; 10];
    read_at(file, 0, &mut header)?;
    if &header[..3] != b"ID3" {
        return Some(0);
    }
    // A syncsafe size (7 bits a byte) after the 10-byte header, and a 10-byte footer when
    // flag 0x10 says so.
    let size = header[6..10]
        .iter()
        .fold(0u64, |n, &b| (n << 7) | u64::from(b & 0x7F));
    let footer = if header[5] & 0x10 != 0 { 10 } else { 0 };
    Some(10 + size + footer)
}

/// The frame and byte counts of the Xing/Info header in the MPEG layer III frame that
/// `bytes` starts with; `None` when they start no such frame, or its header lacks either.
fn xing_counts(bytes: &[u8]) -> Option<(u64, u64)> {
    let header = FrameHeader::parse(bytes)?;
    let &[_, b1, _, b3, ..] = bytes else {
        return None;
    };
    let version = header.version;
    let mono = b3 >> 6 == 3;
    // The side information's length, by MPEG version (3 is MPEG-1) and channel mode, after
    // the 4-byte header and its CRC when the protection bit is clear.
    let side = match (version == 3, mono) {
        (true, true) => 17,
        (true, false) => 32,
        (false, true) => 9,
        (false, false) => 17,
    };
    let crc = if b1 & 1 == 0 { 2 } else { 0 };
    let tag = bytes.get(4 + crc + side..)?;
    let &[m0, m1, m2, m3, f0, f1, f2, f3, ref fields @ ..] = tag else {
        return None;
    };
    if !matches!(&[m0, m1, m2, m3], b"Xing" | b"Info") {
        return None;
    }
    let flags = u32::from_be_bytes([f0, f1, f2, f3]);
    // Frames (flag 1), then bytes (flag 2).
    if flags & 3 != 3 {
        return None;
    }
    let count = |at: usize| -> Option<u64> {
        let field = fields.get(at..at + 4)?;
        Some(u64::from(u32::from_be_bytes(field.try_into().ok()?)))
    };
    let (frames, bytes) = (count(0)?, count(4)?);
    (frames > 0 && bytes > 0).then_some((frames, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first frame of an MPEG-1 layer III stereo stream (128 kbit/s, 44.1 kHz) with an
    /// Info header counting 1000 frames and `bytes` bytes.
    fn info_frame(bytes: u32) -> Vec<u8> {
        let mut frame = vec![0xFF, 0xFB, 0x90, 0x00];
        frame.extend([0u8; 32]);
        frame.extend(b"Info");
        frame.extend(3u32.to_be_bytes());
        frame.extend(1000u32.to_be_bytes());
        frame.extend(bytes.to_be_bytes());
        frame.resize(417, 0);
        frame
    }

    /// `count` plain frames of the stream `info_frame` starts.
    fn frames(count: usize) -> Vec<u8> {
        let mut frame = vec![0xFF, 0xFB, 0x90, 0x00];
        frame.resize(417, 0x55);
        frame.repeat(count)
    }

    #[test]
    fn the_first_frame_is_one_four_frames_confirm() {
        // A lone header in junk, or two a frame apart, is passed over; the stream starts
        // where four frames follow each other.
        let mut window = vec![0u8; 100];
        window[10..14].copy_from_slice(&[0xFF, 0xFB, 0x90, 0x00]);
        window.extend(frames(2));
        window.extend([0u8; 100]);
        window.extend(frames(5));
        assert_eq!(find_frame(&window, true), Search::Found(100 + 834 + 100));
        // A frame ending with the file needs no successor; junk to the end has no frame.
        assert_eq!(find_frame(&frames(1), true), Search::Found(0));
        assert_eq!(find_frame(&[0u8; 2000], true), Search::Nothing);
        // A window that ends before the frame is confirmed asks for more, and only that is
        // read for an MP3 without a Xing header: the search stops at its first frame.
        assert_eq!(find_frame(&frames(4)[..1000], false), Search::ReadMore);
        assert_eq!(find_frame(&[0u8; 2000], false), Search::ReadMore);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain.mp3");
        let mut plain = vec![0u8; 70_000];
        plain.extend(frames(8));
        std::fs::write(&path, &plain).unwrap();
        let mut file = File::open(&path).unwrap();
        assert_eq!(first_frame(&mut file, 0, plain.len() as u64), None);
        let mut with_info = vec![0u8; 70_000];
        with_info.extend(info_frame(417 * 9));
        with_info.extend(frames(8));
        std::fs::write(&path, &with_info).unwrap();
        let mut file = File::open(&path).unwrap();
        let len = with_info.len() as u64;
        assert_eq!(
            first_frame(&mut file, 0, len),
            Some((70_000, (1000, 417 * 9)))
        );
        // 1000 frames announced in 3753 bytes is no stream: not believed.
        assert_eq!(cut_short(&mut file, len), None);
    }

    #[test]
    fn the_info_header_gives_its_counts() {
        assert_eq!(xing_counts(&info_frame(123_456)), Some((1000, 123_456)));
        // Mono MPEG-1 puts it 17 bytes after the header, not 32.
        let mut mono = info_frame(5);
        mono[3] = 0xC0;
        assert_eq!(xing_counts(&mono), None);
        // No byte count, or no frame.
        let mut frames_only = info_frame(5);
        frames_only[36 + 7] = 1;
        assert_eq!(xing_counts(&frames_only), None);
        assert_eq!(xing_counts(b"RIFF\0\0\0\0WAVE"), None);
    }

    #[test]
    fn a_file_holding_fewer_bytes_than_announced_is_cut_short() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.mp3");
        // 1000 frames of 417 bytes.
        let announced = 417_000u32;
        let mut bytes = b"ID3\x04\0\0\0\0\0\x05".to_vec();
        bytes.extend([0u8; 5]);
        bytes.extend(info_frame(announced));
        bytes.extend(frames(999));
        let whole = announced as usize;
        for (held, short) in [
            (whole, false),
            (whole + 128, false),
            (whole - 800, false),
            (whole - 900, true),
            (300_000, true),
        ] {
            let mut file_bytes = bytes.clone();
            file_bytes.resize(15 + held, 0);
            std::fs::write(&path, &file_bytes).unwrap();
            let mut file = File::open(&path).unwrap();
            let found = cut_short(&mut file, file_bytes.len() as u64);
            assert_eq!(found.is_some(), short, "{held} of {announced}: {found:?}");
        }
        // A byte count no stream of 1000 frames has is not believed.
        let mut absurd = bytes.clone();
        absurd[15 + 48..15 + 52].copy_from_slice(&u32::MAX.to_be_bytes());
        absurd.resize(15 + 300_000, 0);
        std::fs::write(&path, &absurd).unwrap();
        let mut file = File::open(&path).unwrap();
        assert_eq!(cut_short(&mut file, absurd.len() as u64), None);
    }
}
