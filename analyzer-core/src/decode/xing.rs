//! An MP3 cut short: the Xing/Info header that LAME (and ffmpeg through it) writes in the
//! stream's first frame counts the stream's bytes, and a file holding fewer was cut off
//! (an unfinished download, a copy that ran out of space).
//!
//! symphonia takes the length from the header's frame count and does not look at the
//! bytes: a sampled analysis, which reads four segments and never the end, gave the row the
//! announced length without a word (an MP3 cut to 88 % of its bytes said 240 s, and `--full`
//! said 211 s, also without a word). Only the first frame's headers are read.

use std::fs::File;

use super::wav_sizes::read_at;

/// How far past an ID3v2 tag (or the file's start) the first frame may lie: encoders put
/// it right after the tag, and padding or junk is passed over (70 KB of zeros hid a cut).
const SEARCH_BYTES: u64 = 1024 * 1024;

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
    let len = SEARCH_BYTES.min(file_len.saturating_sub(start));
    let mut window = vec![0u8; usize::try_from(len).ok()?];
    read_at(file, start, &mut window)?;
    let (frame, (frames, announced)) = (0..window.len()).find_map(|at| {
        let counts = xing_counts(&window[at..])?;
        Some((start + at as u64, counts))
    })?;
    let per_frame = announced / frames;
    if !FRAME_BYTES.contains(&per_frame) {
        return None;
    }
    let held = file_len - frame;
    let short = announced.saturating_sub(held);
    (short > SLACK_FRAMES * per_frame).then_some((announced, held))
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
    let &[sync, b1, b2, b3, ..] = bytes else {
        return None;
    };
    let version = (b1 >> 3) & 3;
    let layer = (b1 >> 1) & 3;
    let valid = sync == 0xFF
        && b1 & 0xE0 == 0xE0
        && version != 1
        && layer == 1
        && !matches!(b2 >> 4, 0 | 15)
        && (b2 >> 2) & 3 != 3;
    if !valid {
        return None;
    }
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
