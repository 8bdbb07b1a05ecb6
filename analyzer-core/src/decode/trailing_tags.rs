//! Tags appended after a FLAC stream: an ID3v1 tag (128 bytes, `TAG`) or an APEv2 tag
//! (ending in a 32-byte `APETAGEX` footer), as old taggers and some rippers write them.
//!
//! symphonia's FLAC reader takes those bytes for the start of one more frame: the last real
//! frame was lost and the row said "the stream ends early (truncated file)", where ffmpeg
//! reads the whole stream. Such a file is read through [`Trimmed`], the same file shown as
//! ending where its tags begin. Nothing is read beyond the tags' headers.

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
        if word(20) & APE_HAS_HEADER != 0 {
            tag += APE_FOOTER_BYTES;
        }
        if tag >= APE_FOOTER_BYTES && tag <= end {
            end -= tag;
        }
    }
    (end < file_len).then_some(end)
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

    /// An APEv2 tag of `items` bytes of items, with a header or not.
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
        tag.extend(vec![7u8; items]);
        tag.extend(block(false));
        tag
    }

    #[test]
    fn the_audio_ends_before_id3v1_and_ape_tags() {
        let audio = vec![1u8; 1000];
        let mut id3v1 = b"TAG".to_vec();
        id3v1.resize(128, b' ');
        for (tail, end) in [
            (id3v1.clone(), Some(1000)),
            (ape(50, true), Some(1000)),
            (ape(50, false), Some(1000)),
            ([ape(50, true), id3v1.clone()].concat(), Some(1000)),
            (Vec::new(), None),
            (vec![0u8; 128], None),
        ] {
            let (mut file, len) = file_of(&[audio.clone(), tail].concat());
            assert_eq!(audio_end(&mut file, len), end);
        }
        // A footer whose size runs past the file's start is not trusted.
        let mut lying = ape(50, false);
        let at = lying.len() - 32 + 12;
        lying[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let (mut file, len) = file_of(&lying);
        assert_eq!(audio_end(&mut file, len), None);
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
