//! Chained Ogg files: one Ogg stream after another in a file (`cat a.ogg b.ogg`, a radio
//! recording, a jingle before a song), each link opening with its own first pages.
//!
//! symphonia announces only the first link's length, so the sampled decode placed every
//! segment in it, and the whole decode stopped where the second link began ("the stream
//! changes its parameters"): a 20 s chain read as 10 s, a chain of fifty 0.5 s links as
//! `too_short`. A chained file is decoded whole instead, link after link, and is known by a
//! walk of its page headers (27 bytes and a segment table each; the pages' bodies are
//! skipped, not read).

use std::fs::File;
use std::io::{BufReader, Read, Seek};

/// An Ogg page header's fixed part: `OggS`, version, flags, granule position, serial,
/// sequence number, checksum, segment count.
const PAGE_HEADER_BYTES: usize = 27;

/// The page flag that marks the first page of a logical stream.
const FIRST_PAGE: u8 = 0x02;

/// Whether the Ogg file `file` (of `file_len` bytes) holds a first page after pages of
/// audio: the start of a second link. Streams multiplexed side by side open with their
/// first pages together and are no chain. A page that does not parse ends the walk, with
/// the answer so far.
pub(super) fn is_chained(file: &mut File, file_len: u64) -> bool {
    if file.rewind().is_err() {
        return false;
    }
    let mut reader = BufReader::new(file);
    let mut pos = 0u64;
    let mut past_first_pages = false;
    let mut header = [0u8; PAGE_HEADER_BYTES];
    let mut lacing = [0u8; 255];
    while pos + PAGE_HEADER_BYTES as u64 <= file_len {
        if reader.read_exact(&mut header).is_err() || &header[..4] != b"OggS" {
            return false;
        }
        let segments = usize::from(header[26]);
        if reader.read_exact(&mut lacing[..segments]).is_err() {
            return false;
        }
        let first = header[5] & FIRST_PAGE != 0;
        if first && past_first_pages {
            return true;
        }
        past_first_pages |= !first;
        let body: u64 = lacing[..segments].iter().map(|&l| u64::from(l)).sum();
        if reader.seek_relative(body as i64).is_err() {
            return false;
        }
        pos += (PAGE_HEADER_BYTES + segments) as u64 + body;
    }
    false
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// An Ogg page of `serial` with `flags` and a body of `body` bytes.
    fn page(serial: u32, flags: u8, body: usize) -> Vec<u8> {
        let mut p = b"OggS\x00".to_vec();
        p.push(flags);
        p.extend([0u8; 8]);
        p.extend(serial.to_le_bytes());
        p.extend([0u8; 8]);
        let lacing: Vec<u8> = (0..body.div_ceil(255).max(1))
            .map(|i| (body - i * 255).min(255) as u8)
            .collect();
        p.push(lacing.len() as u8);
        p.extend(&lacing);
        p.extend(vec![0u8; body]);
        p
    }

    fn chained(bytes: &[u8]) -> bool {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        is_chained(&mut file, bytes.len() as u64)
    }

    #[test]
    fn a_first_page_after_audio_pages_is_a_second_link() {
        let link = |serial| {
            [
                page(serial, FIRST_PAGE, 30),
                page(serial, 0, 600),
                page(serial, 4, 100),
            ]
            .concat()
        };
        assert!(!chained(&link(1)));
        assert!(chained(&[link(1), link(1)].concat()));
        assert!(chained(&[link(1), link(2)].concat()));
        // Two streams side by side: both first pages come first.
        let muxed = [
            page(1, FIRST_PAGE, 30),
            page(2, FIRST_PAGE, 30),
            page(1, 0, 500),
            page(2, 0, 500),
        ]
        .concat();
        assert!(!chained(&muxed));
        // Garbage after the first link ends the walk.
        assert!(!chained(&[link(1), b"junk".repeat(20), link(2)].concat()));
        assert!(!chained(b"OggS"));
    }
}
