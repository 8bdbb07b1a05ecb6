//! Tags appended after a FLAC stream: an ID3v1 tag (128 bytes, `TAG`) or an APEv2 tag
//! (ending in a 32-byte `APETAGEX` footer), as old taggers and some rippers write them.
//!
//! symphonia's FLAC reader takes those bytes for the start of one more frame: the last real
//! frame was lost and the row said "the stream ends early (truncated file)", where ffmpeg
//! reads the whole stream. Such a file is read through [`Trimmed`], the same file shown as
//! ending where its tags begin, once a FLAC frame is found to end exactly there (its
//! CRC-16 checks): a tag's size that lies, or audio whose last bytes happen to read `TAG`,
//! left a decodable file refused or cut short. Nothing is read beyond the tags' headers and
//! the last frames.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use symphonia::core::io::MediaSource;

use super::wav_sizes::read_at;

/// An ID3v1 tag's length; it starts `TAG`.
const ID3V1_BYTES: u64 = 128;

/// An APEv2 footer's (and header's) length; it starts `APETAGEX`.
const APE_FOOTER_BYTES: u64 = 32;

/// The APE tag flag that says a header precedes the items (the footer's size leaves it out).
const APE_HAS_HEADER: u32 = 1 << 31;

/// Where the audio of `file` (of `file_len` bytes) ends when tags follow it: before an
/// ID3v1 tag, and before an APEv2 tag in front of that or at the end; `None` when no such
/// tag ends the file.
pub(super) fn audio_end(file: &mut File, file_len: u64) -> Option<u64> {
    let mut end = file_len;
    let mut magic = [0u8; 3];
    if end >= ID3V1_BYTES
        && read_at(file, end - ID3V1_BYTES, &mut magic).is_some()
        && &magic == b"TAG"
    {
        end -= ID3V1_BYTES;
    }
    let mut footer = [0u8; APE_FOOTER_BYTES as usize];
    if end >= APE_FOOTER_BYTES
        && read_at(file, end - APE_FOOTER_BYTES, &mut footer).is_some()
        && &footer[..8] == b"APETAGEX"
    {
        let word = |at: usize| {
            u32::from_le_bytes([footer[at], footer[at + 1], footer[at + 2], footer[at + 3]])
        };
        // The size counts the items and the footer, not the header.
        let mut tag = u64::from(word(12));
        let has_header = word(20) & APE_HAS_HEADER != 0;
        if has_header {
            tag += APE_FOOTER_BYTES;
        }
        if tag >= APE_FOOTER_BYTES && tag <= end && ape_starts_at(file, end - tag, has_header) {
            end -= tag;
        }
    }
    (end < file_len && a_frame_ends_at(file, end)).then_some(end)
}

/// Whether an APEv2 tag starts at `at`: its header there, where the footer says it has
/// one, else a first item (value size, flags, a key of 2 to 255 printable ASCII bytes and
/// its 0). A footer's size that lies is not trusted.
fn ape_starts_at(file: &mut File, at: u64, has_header: bool) -> bool {
    let mut start = [0u8; 8 + 256];
    let Some(len) = (0..=start.len())
        .rev()
        .find(|&n| read_at(file, at, &mut start[..n]).is_some())
    else {
        return false;
    };
    let start = &start[..len];
    if has_header {
        return start.starts_with(b"APETAGEX");
    }
    let key = start.get(8..).unwrap_or_default();
    key.iter().position(|&b| b == 0).is_some_and(|n| {
        (2..=255).contains(&n) && key[..n].iter().all(|b| (0x20..0x7f).contains(b))
    })
}

/// How far before a candidate end the start of the frame ending there is looked for: past
/// the largest frame FLAC allows (65535 samples of 8 channels of 32 bits, verbatim, 2 MiB).
const FRAME_WINDOW: u64 = 4 << 20;

/// Frame headers (sync and CRC-8 both right) tried before giving up: each costs a CRC-16
/// over the bytes after it.
const MAX_HEADERS: usize = 64;

/// Whether a FLAC frame ends at `end`: a frame header (`0xFFF8` or `0xFFF9` and a header
/// whose CRC-8 checks) before it starts bytes whose CRC-16 is the two bytes that end them,
/// as a frame's footer is. Audio that reads as a sync word (a run of -8 in 16 bits) has no
/// header CRC.
fn a_frame_ends_at(file: &mut File, end: u64) -> bool {
    let start = end.saturating_sub(FRAME_WINDOW);
    let mut window = vec![0u8; (end - start) as usize];
    if window.len() < 4 || read_at(file, start, &mut window).is_none() {
        return false;
    }
    let (body, footer) = window.split_at(window.len() - 2);
    let stored = u16::from_be_bytes([footer[0], footer[1]]);
    (0..body.len() - 1)
        .rev()
        .filter(|&at| frame_header_checks(&body[at..]))
        .take(MAX_HEADERS)
        .any(|at| flac_crc16(&body[at..]) == stored)
}

/// Whether `bytes` open with a FLAC frame header: the sync, no reserved values, and a
/// CRC-8 (polynomial 0x07) over the header that checks.
fn frame_header_checks(bytes: &[u8]) -> bool {
    if bytes.len() < 6 || bytes[0] != 0xFF || bytes[1] & 0xFE != 0xF8 {
        return false;
    }
    let (block, rate) = (bytes[2] >> 4, bytes[2] & 0x0F);
    let (channels, width) = (bytes[3] >> 4, (bytes[3] >> 1) & 0x07);
    if block == 0 || rate == 15 || channels > 10 || width == 3 || bytes[3] & 1 != 0 {
        return false;
    }
    // The frame or sample number, UTF-8 coded in 1 to 7 bytes.
    let number = match bytes[4].leading_ones() {
        0 => 1,
        n @ 2..=7 => n as usize,
        _ => return false,
    };
    let mut at = 4 + number;
    if bytes.len() < at || !bytes[5..at].iter().all(|b| b & 0xC0 == 0x80) {
        return false;
    }
    at += match block {
        6 => 1,
        7 => 2,
        _ => 0,
    };
    at += match rate {
        12 => 1,
        13 | 14 => 2,
        _ => 0,
    };
    bytes.len() > at && crc8(&bytes[..at]) == bytes[at]
}

/// FLAC's frame header CRC-8: polynomial 0x07, initial 0.
fn crc8(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |crc, &b| {
        (0..8).fold(crc ^ b, |c, _| {
            if c & 0x80 != 0 {
                (c << 1) ^ 0x07
            } else {
                c << 1
            }
        })
    })
}

/// FLAC's frame CRC-16: polynomial 0x8005, initial 0, not reflected.
fn flac_crc16(bytes: &[u8]) -> u16 {
    const TABLE: [u16; 256] = {
        let mut table = [0u16; 256];
        let mut i = 0;
        while i < 256 {
            let mut crc = (i as u16) << 8;
            let mut bit = 0;
            while bit < 8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x8005
                } else {
                    crc << 1
                };
                bit += 1;
            }
            table[i] = crc;
            i += 1;
        }
        table
    };
    bytes.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ TABLE[usize::from((crc >> 8) as u8 ^ b)]
    })
}

/// Whether the file is FLAC: `fLaC` at its start, or right after an ID3v2 tag there (as
/// `mid3v2` puts one).
pub(super) fn is_flac(file: &mut File, head: &[u8]) -> bool {
    if head.starts_with(b"fLaC") {
        return true;
    }
    if head.len() < 10 || &head[..3] != b"ID3" {
        return false;
    }
    let size = head[6..10]
        .iter()
        .fold(0u64, |n, &b| (n << 7) | u64::from(b & 0x7f));
    let footer = if head[5] & 0x10 != 0 { 10 } else { 0 };
    let mut magic = [0u8; 4];
    read_at(file, 10 + size + footer, &mut magic).is_some() && &magic == b"fLaC"
}

/// A file read in place as if it ended at `len`.
pub(super) struct Trimmed {
    file: File,
    len: u64,
    /// The position this source has moved to.
    pos: u64,
}

impl Trimmed {
    /// `file`, rewound, shown as ending at `len`.
    pub(super) fn new(mut file: File, len: u64) -> std::io::Result<Self> {
        file.rewind()?;
        Ok(Trimmed { file, len, pos: 0 })
    }
}

impl Read for Trimmed {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = usize::try_from(self.len.saturating_sub(self.pos)).unwrap_or(usize::MAX);
        let take = buf.len().min(left);
        if take == 0 {
            return Ok(0);
        }
        let n = self.file.read(&mut buf[..take])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Trimmed {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::End(delta) => self.len.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.pos.checked_add_signed(delta),
        };
        let Some(target) = target else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a seek before the start of the file",
            ));
        };
        self.pos = self.file.seek(SeekFrom::Start(target))?;
        Ok(self.pos)
    }
}

impl MediaSource for Trimmed {
    fn is_seekable(&self) -> bool {
        true
    }

    fn byte_len(&self) -> Option<u64> {
        Some(self.len)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn file_of(bytes: &[u8]) -> (File, u64) {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        (file, bytes.len() as u64)
    }

    /// An APEv2 tag of `items` bytes of items (one, at least 14), with a header or not.
    fn ape(items: usize, header: bool) -> Vec<u8> {
        let size = (items as u32 + 32).to_le_bytes();
        let flags = if header { APE_HAS_HEADER } else { 0 }.to_le_bytes();
        let block = |is_header: bool| {
            let mut b = b"APETAGEX".to_vec();
            b.extend(2000u32.to_le_bytes());
            b.extend(size);
            b.extend(1u32.to_le_bytes());
            let mut f = u32::from_le_bytes(flags);
            if is_header {
                f |= 1 << 29;
            }
            b.extend(f.to_le_bytes());
            b.extend([0u8; 8]);
            b
        };
        let mut tag = if header { block(true) } else { Vec::new() };
        // One item: value size, flags, `Title` and its 0, then the value.
        let value = items - 14;
        tag.extend((value as u32).to_le_bytes());
        tag.extend(0u32.to_le_bytes());
        tag.extend(b"Title\0");
        tag.extend(vec![b'x'; value]);
        tag.extend(block(false));
        tag
    }

    /// A real FLAC stream, whose last frame ends where the file does.
    fn flac() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/fourfloor-128.flac"
        ))
        .unwrap()
    }

    #[test]
    fn the_audio_ends_before_id3v1_and_ape_tags() {
        let audio = flac();
        let len = audio.len() as u64;
        let mut id3v1 = b"TAG".to_vec();
        id3v1.resize(128, b' ');
        for (tail, end) in [
            (id3v1.clone(), Some(len)),
            (ape(50, true), Some(len)),
            (ape(50, false), Some(len)),
            ([ape(50, true), id3v1.clone()].concat(), Some(len)),
            (Vec::new(), None),
            (vec![0u8; 128], None),
        ] {
            let (mut file, file_len) = file_of(&[audio.clone(), tail].concat());
            assert_eq!(audio_end(&mut file, file_len), end);
        }
        // A footer whose size runs past the file's start, or cuts into the audio, is not
        // trusted: no frame ends where it says the tag starts.
        for size in [u32::MAX, 1000] {
            let mut lying = [audio.clone(), ape(50, false)].concat();
            let at = lying.len() - 32 + 12;
            lying[at..at + 4].copy_from_slice(&size.to_le_bytes());
            let (mut file, file_len) = file_of(&lying);
            assert_eq!(audio_end(&mut file, file_len), None, "{size}");
        }
        // Audio whose bytes 128 from the end happen to read `TAG` is no tag.
        let mut tag_like = audio.clone();
        let at = tag_like.len() - 128;
        tag_like[at..at + 3].copy_from_slice(b"TAG");
        let (mut file, file_len) = file_of(&tag_like);
        assert_eq!(audio_end(&mut file, file_len), None);
    }

    /// A real stream has frame headers whose CRC-8 checks; audio that reads as sync words
    /// (a run of -8 in 16 bits: `F8 FF F8 FF ...`) has none, and does not use up the
    /// frames tried.
    #[test]
    fn frame_headers_are_known_by_their_crc() {
        let audio = flac();
        assert!((0..audio.len()).any(|at| frame_header_checks(&audio[at..])));
        let lookalike = [0xF8u8, 0xFF].repeat(500);
        assert!(!(0..lookalike.len()).any(|at| frame_header_checks(&lookalike[at..])));
    }

    #[test]
    fn flac_behind_an_id3v2_tag_is_flac() {
        let mut tagged = b"ID3\x04\0\0\0\0\0\x10".to_vec();
        tagged.extend([0u8; 16]);
        tagged.extend(flac());
        let (mut file, _) = file_of(&tagged);
        assert!(is_flac(&mut file, &tagged[..36]));
        let mp3 = b"ID3\x04\0\0\0\0\0\x04\0\0\0\0\xff\xfb\x90\x64".to_vec();
        let (mut file, _) = file_of(&mp3);
        assert!(!is_flac(&mut file, &mp3));
    }

    #[test]
    fn a_trimmed_file_reads_and_seeks_as_a_shorter_one() {
        let (file, _) = file_of(b"0123456789");
        let mut trimmed = Trimmed::new(file, 6).unwrap();
        let mut all = Vec::new();
        trimmed.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"012345");
        assert_eq!(trimmed.seek(SeekFrom::End(-2)).unwrap(), 4);
        let mut rest = Vec::new();
        trimmed.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"45");
        assert_eq!(trimmed.byte_len(), Some(6));
        assert!(trimmed.seek(SeekFrom::Current(-10)).is_err());
    }
}
