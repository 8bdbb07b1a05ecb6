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

/// What a walk of an Ogg file's pages found.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Chain {
    /// Links: groups of first pages, each after pages of the link before.
    pub links: usize,
    /// The first link after the first that holds no audio stream symphonia reads (Speex,
    /// Theora video), by its number and what it holds: symphonia's reader skips such a
    /// link and every one after it without a word.
    pub unread: Option<(usize, &'static str)>,
    /// What the first link holds when it has no audio stream symphonia reads (Theora
    /// video alone): the probe then said the file "ends before its headers do".
    pub first_without_audio: Option<&'static str>,
}

/// Walks the pages of the Ogg file `file` (of `file_len` bytes): a first page after pages
/// of audio starts another link. Streams multiplexed side by side open with their first
/// pages together and are one link. A page that does not parse ends the walk, with what
/// was found so far.
pub(super) fn walk(file: &mut File, file_len: u64) -> Chain {
    let mut chain = Chain::default();
    if file.rewind().is_err() {
        return chain;
    }
    let mut reader = BufReader::new(file);
    let mut pos = 0u64;
    let mut in_first_pages = false;
    // What the current link's first pages hold: whether one is audio, else the first name.
    let mut audio = false;
    let mut held: &'static str = "no stream";
    let mut header = [0u8; PAGE_HEADER_BYTES];
    let mut lacing = [0u8; 255];
    while pos + PAGE_HEADER_BYTES as u64 <= file_len {
        if reader.read_exact(&mut header).is_err() || &header[..4] != b"OggS" {
            break;
        }
        let segments = usize::from(header[26]);
        if reader.read_exact(&mut lacing[..segments]).is_err() {
            break;
        }
        let body: u64 = lacing[..segments].iter().map(|&l| u64::from(l)).sum();
        let mut skip = body;
        let first = header[5] & FIRST_PAGE != 0;
        if first {
            if !in_first_pages {
                chain.links += 1;
                (audio, held) = (false, "no stream");
            }
            let mut codec = [0u8; 8];
            let peek = codec.len().min(body as usize);
            if reader.read_exact(&mut codec[..peek]).is_err() {
                break;
            }
            skip -= peek as u64;
            match stream_kind(&codec[..peek]) {
                Ok(()) => audio = true,
                Err(name) if held == "no stream" => held = name,
                Err(_) => {}
            }
        } else if in_first_pages && !audio {
            if chain.links == 1 {
                chain.first_without_audio = Some(held);
            } else if chain.unread.is_none() {
                chain.unread = Some((chain.links, held));
            }
        }
        in_first_pages = first;
        if reader.seek_relative(skip as i64).is_err() {
            break;
        }
        pos += (PAGE_HEADER_BYTES + segments) as u64 + body;
    }
    chain
}

/// Whether a stream whose identification packet starts `packet` is audio symphonia maps
/// (Vorbis, Opus, FLAC); else what it holds.
fn stream_kind(packet: &[u8]) -> Result<(), &'static str> {
    if packet.starts_with(b"\x01vorbis")
        || packet.starts_with(b"OpusHead")
        || packet.starts_with(b"\x7fFLAC")
    {
        return Ok(());
    }
    Err(if packet.starts_with(b"Speex") {
        "Speex audio"
    } else if packet.starts_with(b"\x80theora") {
        "Theora video"
    } else {
        "a stream of another codec"
    })
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

    /// A first page whose body opens with `codec`.
    fn first_page(serial: u32, codec: &[u8]) -> Vec<u8> {
        let mut p = page(serial, FIRST_PAGE, 30);
        let body = p.len() - 30;
        p[body..body + codec.len()].copy_from_slice(codec);
        p
    }

    /// A link after another that holds Speex or Theora alone is named: symphonia's reader
    /// skipped it and every link after it without a word. Theora beside Vorbis is audio.
    #[test]
    fn a_link_without_audio_symphonia_reads_is_named() {
        let link = |serial, codec: &[u8]| {
            [
                first_page(serial, codec),
                page(serial, 0, 600),
                page(serial, 4, 100),
            ]
            .concat()
        };
        let vorbis = b"\x01vorbis";
        let speex = link(2, b"Speex   ");
        let chain = walked(&[link(1, vorbis), speex, link(3, vorbis)].concat());
        assert_eq!((chain.links, chain.unread), (3, Some((2, "Speex audio"))));
        let fine = walked(&[link(1, vorbis), link(2, b"OpusHead")].concat());
        assert_eq!((fine.links, fine.unread), (2, None));
        let video_and_audio = [
            first_page(2, b"\x80theora"),
            first_page(3, vorbis),
            page(2, 0, 500),
            page(3, 0, 500),
        ]
        .concat();
        assert_eq!(
            walked(&[link(1, vorbis), video_and_audio].concat()).unread,
            None
        );
        let video = walked(&[link(1, vorbis), link(2, b"\x80theora")].concat());
        assert_eq!(video.unread, Some((2, "Theora video")));
        let first = walked(&[link(1, b"\x80theora"), link(2, vorbis)].concat());
        assert_eq!(first.first_without_audio, Some("Theora video"));
        assert_eq!(walked(&link(1, vorbis)).first_without_audio, None);
    }

    fn walked(bytes: &[u8]) -> Chain {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        walk(&mut file, bytes.len() as u64)
    }

    fn chained(bytes: &[u8]) -> bool {
        walked(bytes).links > 1
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
