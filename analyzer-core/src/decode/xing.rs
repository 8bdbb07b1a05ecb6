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
/// it right after the tag, and a little padding or junk is passed over.
const SEARCH_BYTES: u64 = 64 * 1024;

/// Bytes a stream may lack against its header before it counts as cut short: a frame or
/// two of difference is an encoder's rounding, not a missing end.
const SLACK_BYTES: u64 = 16 * 1024;

/// The bytes the Xing/Info header of `file` (of `file_len` bytes) announces and those the
/// file holds from that frame on, where it holds fewer by more than [`SLACK_BYTES`] and
/// more than 1 %; `None` for any other file (no MP3, no header, no byte count).
pub(super) fn cut_short(file: &mut File, file_len: u64) -> Option<(u64, u64)> {
    let start = id3v2_end(file)?;
    let len = SEARCH_BYTES.min(file_len.saturating_sub(start));
    let mut window = vec![0u8; usize::try_from(len).ok()?];
    read_at(file, start, &mut window)?;
    let (frame, announced) = (0..window.len()).find_map(|at| {
        let bytes = xing_bytes(&window[at..])?;
        Some((start + at as u64, bytes))
    })?;
    let held = file_len - frame;
    let short = announced.saturating_sub(held);
    (short > SLACK_BYTES && short * 100 > announced).then_some((announced, held))
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

/// The byte count of the Xing/Info header in the MPEG layer III frame that `bytes` starts
/// with; `None` when they start no such frame, or its header counts no bytes.
fn xing_bytes(bytes: &[u8]) -> Option<u64> {
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
    // Frames (flag 1) come before bytes (flag 2).
    let at = if flags & 1 != 0 { 4 } else { 0 };
    if flags & 2 == 0 {
        return None;
    }
    let count = fields.get(at..at + 4)?;
    let count = u64::from(u32::from_be_bytes(count.try_into().ok()?));
    (count > 0).then_some(count)
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
    fn the_info_header_gives_its_byte_count() {
        assert_eq!(xing_bytes(&info_frame(123_456)), Some(123_456));
        // Mono MPEG-1 puts it 17 bytes after the header, not 32.
        let mut mono = info_frame(5);
        mono[3] = 0xC0;
        assert_eq!(xing_bytes(&mono), None);
        // No byte count, or no frame.
        let mut frames_only = info_frame(5);
        frames_only[36 + 7] = 1;
        assert_eq!(xing_bytes(&frames_only), None);
        assert_eq!(xing_bytes(b"RIFF\0\0\0\0WAVE"), None);
    }

    #[test]
    fn a_file_holding_fewer_bytes_than_announced_is_cut_short() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.mp3");
        let announced = 1_000_000u32;
        let mut bytes = b"ID3\x04\0\0\0\0\0\x05".to_vec();
        bytes.extend([0u8; 5]);
        bytes.extend(info_frame(announced));
        let whole = announced as usize;
        for (held, short) in [(whole, false), (whole - 8_000, false), (800_000, true)] {
            let mut file_bytes = bytes.clone();
            file_bytes.resize(15 + held, 0);
            std::fs::write(&path, &file_bytes).unwrap();
            let mut file = File::open(&path).unwrap();
            let found = cut_short(&mut file, file_bytes.len() as u64);
            assert_eq!(found.is_some(), short, "{held} of {announced}: {found:?}");
        }
    }
}
