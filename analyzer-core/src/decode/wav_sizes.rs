//! Unfinished WAV files: a header whose sizes were never filled in.
//!
//! A recorder writes a WAV's RIFF and data sizes last, once it knows them. One that crashed,
//! or a stream cut off, leaves them as they were at the start (0, or the header's own 36
//! bytes) or as a guess (0x7ffffff0): symphonia refuses such a file as corrupt ("invalid
//! riff length", "chunk length exceeds parent") or finds no audio in it, while ffmpeg and
//! players read the audio that is there. When a file that starts `RIFF....WAVE` fails that
//! way, the decoder retries it through [`PatchedSizes`]: the same file, read in place, with
//! the RIFF size shown as the file's real size and a data size of 0 or past the file's end
//! shown as reaching the end of the file. Nothing is read into memory beyond the chunk
//! headers, and a well-formed file never takes this path.
//!
//! The same retry mends one more header field symphonia refuses and ffmpeg reads: an
//! extensible `fmt ` chunk's channel mask with bits past the 18 standard speaker positions
//! (SPEAKER_ALL, 0x80000000, or a reserved bit) was "too many channels in mask"; it is
//! shown without those bits, the positions it names kept. And an extensible header of more
//! channels than those 18 positions (19 to 26) was refused whatever its mask, symphonia
//! filling the mask up to the channel count: its PCM or float audio is shown under the
//! plain header of its sub-format, which reads any count up to 26, the same samples.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use symphonia::core::io::MediaSource;

/// Chunks walked from offset 12 looking for `data` before giving up (a real header has a
/// handful: `fmt `, `fact`, `LIST`, `bext`, `JUNK`, ...).
const MAX_CHUNKS: usize = 64;

/// A size stored as 0xFFFFFFFF means "unknown" to symphonia: the stream ends with the file.
const UNKNOWN_SIZE: u32 = u32::MAX;

/// Whether a file's first 12 bytes are a RIFF WAVE header.
pub(super) fn is_wave(head: &[u8]) -> bool {
    head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WAVE"
}

/// The sizes to show in place of the header's, and what was wrong with them.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SizeRepair {
    /// Four bytes to show at a file offset, in place of what is stored there.
    patches: Vec<(u64, [u8; 4])>,
    /// What was wrong, for the warning ("the RIFF size says 0 bytes, the file holds 4044").
    wrong: Vec<String>,
    /// The channel mask shown without the bits no reader knows, when it had some.
    mask: Option<String>,
}

impl SizeRepair {
    /// Reads the header of the WAV `file` of `file_len` bytes (its position is left
    /// anywhere) and plans what to show: the RIFF size as the file's size less 8, and a
    /// data size of 0 or one that runs past the file as reaching its end. `None` when no
    /// `data` chunk header is found within [`MAX_CHUNKS`] chunks of offset 12, or when the
    /// sizes need no change (then the file's problem is something else).
    pub(super) fn plan(file: &mut File, file_len: u64) -> Option<Self> {
        let mut riff = [0u8; 4];
        read_at(file, 4, &mut riff)?;
        let data_at = find_data_chunk(file, file_len)?;
        let mut stored = [0u8; 4];
        read_at(file, data_at + 4, &mut stored)?;
        let stored_data = u32::from_le_bytes(stored);
        let data_start = data_at + 8;
        let following = file_len - data_start;

        let mut repair = SizeRepair {
            patches: Vec::new(),
            wrong: Vec::new(),
            mask: None,
        };
        if let Some(patch) = plain_format(file, file_len) {
            repair.patches.push(patch);
        }
        if let Some((at, mask)) = channel_mask(file, file_len)
            && mask >> STANDARD_POSITIONS != 0
        {
            let known = mask & ((1 << STANDARD_POSITIONS) - 1);
            repair.patches.push((at, known.to_le_bytes()));
            repair.mask = Some(format!(
                "the WAV channel mask {mask:#010x} names speaker positions no reader knows: \
                 read as {known:#010x}"
            ));
        }
        let data_wrong =
            stored_data == 0 || (stored_data != UNKNOWN_SIZE && u64::from(stored_data) > following);
        // With nothing after the header, a size of 0 is shown: the file is then refused as
        // holding no audio, not for its sizes.
        if data_wrong && presented(following) != stored {
            repair.patches.push((data_at + 4, presented(following)));
            repair.wrong.push(format!(
                "the data size says {stored_data} bytes, {following} follow it"
            ));
        }
        let stored_riff = u32::from_le_bytes(riff);
        let riff_size = presented(file_len - 8);
        if stored_riff != UNKNOWN_SIZE && stored_riff.to_le_bytes() != riff_size {
            repair.patches.push((4, riff_size));
            repair.wrong.push(format!(
                "the RIFF size says {stored_riff} bytes, the file holds {file_len}"
            ));
        }
        (!repair.patches.is_empty()).then_some(repair)
    }

    /// The warning a row carries when the file was read through this repair; `None` when
    /// only a valid header was shown in its plain form.
    pub(super) fn warning(&self) -> Option<String> {
        let sizes = (!self.wrong.is_empty()).then(|| {
            format!(
                "the WAV header's sizes are wrong ({}; an unfinished recording?): read to the \
                 end of the file",
                self.wrong.join(", ")
            )
        });
        let said: Vec<String> = sizes.into_iter().chain(self.mask.clone()).collect();
        (!said.is_empty()).then(|| said.join("; "))
    }

    /// `file`, rewound, as a media source that shows the repaired sizes.
    pub(super) fn apply(self, mut file: File) -> std::io::Result<PatchedSizes> {
        file.rewind()?;
        Ok(PatchedSizes {
            file,
            pos: 0,
            patches: self.patches,
        })
    }
}

/// A size of `bytes` as a header field: exact where it fits, else "unknown" (0xFFFFFFFF,
/// read to the end of the file, as a WAV written to a pipe is).
fn presented(bytes: u64) -> [u8; 4] {
    u32::try_from(bytes)
        .ok()
        .filter(|&b| b != UNKNOWN_SIZE)
        .unwrap_or(UNKNOWN_SIZE)
        .to_le_bytes()
}

/// The format tag of WAVE_FORMAT_EXTENSIBLE, the one `fmt ` chunk that carries a channel
/// mask.
pub(super) const WAVE_FORMAT_EXTENSIBLE: u16 = 0xFFFE;

/// Where the channel mask sits in an extensible `fmt ` chunk: after the 16 bytes of the
/// plain chunk, the extension's size (2) and the valid bits per sample (2).
pub(super) const MASK_OFFSET: usize = 20;

/// Speaker positions a WAVE channel mask may name (FL ... TBR): symphonia refuses a mask
/// with any bit above them (its `Position::from_wave_channel_mask`, whose count is private).
const STANDARD_POSITIONS: u32 = 18;

/// Where an extensible `fmt ` chunk's sub-format GUID starts: its first two bytes are the
/// plain format tag of the audio (1 PCM, 3 IEEE float).
const SUB_FORMAT_OFFSET: usize = 24;

/// The four bytes (format tag, channel count) that show an extensible `fmt ` chunk of more
/// channels than [`STANDARD_POSITIONS`] as the plain chunk of its PCM or float sub-format,
/// with the offset to show them at; `None` for any other header. The plain readers take the
/// 40-byte chunk and skip its extension; PCM with fewer valid bits than its container is
/// read at the container's width, where the samples stand left-justified, as the same
/// values.
fn plain_format(file: &mut File, file_len: u64) -> Option<(u64, [u8; 4])> {
    let (at, len) = find_chunk(file, file_len, b"fmt ")?;
    let mut fmt = [0u8; SUB_FORMAT_OFFSET + 2];
    if len != 40 {
        return None;
    }
    read_at(file, at + 8, &mut fmt)?;
    let tag = u16::from_le_bytes([fmt[0], fmt[1]]);
    let channels = u16::from_le_bytes([fmt[2], fmt[3]]);
    let sub_format = [fmt[SUB_FORMAT_OFFSET], fmt[SUB_FORMAT_OFFSET + 1]];
    let readable = matches!(sub_format, [1, 0] | [3, 0]);
    (tag == WAVE_FORMAT_EXTENSIBLE && u32::from(channels) > STANDARD_POSITIONS && readable).then(
        || {
            let [lo, hi] = channels.to_le_bytes();
            (at + 8, [sub_format[0], sub_format[1], lo, hi])
        },
    )
}

/// The file offset and value of the channel mask of an extensible `fmt ` chunk; `None` for
/// any other header.
fn channel_mask(file: &mut File, file_len: u64) -> Option<(u64, u32)> {
    let (body, fmt) = extensible_fmt::<{ MASK_OFFSET + 4 }>(file, file_len)?;
    let mask = u32::from_le_bytes(fmt[MASK_OFFSET..].try_into().ok()?);
    Some((body + MASK_OFFSET as u64, mask))
}

/// The file offset of an extensible `fmt ` chunk's body and its first `N` bytes; `None` for
/// any other header, or a chunk shorter than `N`.
fn extensible_fmt<const N: usize>(file: &mut File, file_len: u64) -> Option<(u64, [u8; N])> {
    let (at, len) = find_chunk(file, file_len, b"fmt ")?;
    if (len as usize) < N {
        return None;
    }
    let mut fmt = [0u8; N];
    read_at(file, at + 8, &mut fmt)?;
    let tag = u16::from_le_bytes([fmt[0], fmt[1]]);
    (tag == WAVE_FORMAT_EXTENSIBLE).then_some((at + 8, fmt))
}

/// Chunks a walk for every `fmt ` chunk reads before giving up: symphonia walks any
/// number of them to the `data` chunk, and reads the last `fmt ` it meets.
const MAX_FORMAT_WALK: usize = 1 << 20;

/// The largest channel count of the `fmt ` chunks before the `data` chunk (symphonia reads
/// the last of them; a 33-channel one after 70 `JUNK` chunks, or after a 2-channel one,
/// passed a check of the first within [`MAX_CHUNKS`]).
pub(super) fn most_channels(file: &mut File, file_len: u64) -> Option<u16> {
    let mut at = 12u64;
    let mut most = None;
    for _ in 0..MAX_FORMAT_WALK {
        let mut header = [0u8; 12];
        if at.checked_add(8)? > file_len || read_at(file, at, &mut header[..8]).is_none() {
            break;
        }
        let name = [header[0], header[1], header[2], header[3]];
        if &name == b"data" {
            break;
        }
        if &name == b"fmt " && read_at(file, at + 8, &mut header[8..]).is_some() {
            let count = u16::from_le_bytes([header[10], header[11]]);
            most = most.max(Some(count));
        }
        let len = u64::from(u32::from_le_bytes(header[4..8].try_into().ok()?));
        at = at + 8 + len + (len & 1);
    }
    most
}

/// The sub-format tag of an extensible `fmt ` chunk (the first two bytes of its GUID);
/// `None` for any other header.
pub(super) fn extensible_sub_format(file: &mut File, file_len: u64) -> Option<u16> {
    let (_, fmt) = extensible_fmt::<{ SUB_FORMAT_OFFSET + 2 }>(file, file_len)?;
    Some(u16::from_le_bytes([
        fmt[SUB_FORMAT_OFFSET],
        fmt[SUB_FORMAT_OFFSET + 1],
    ]))
}

/// The format tag of the `fmt ` chunk (1 PCM, 0x55 MP3, ...).
pub(super) fn format_tag(file: &mut File, file_len: u64) -> Option<u16> {
    let (at, _) = find_chunk(file, file_len, b"fmt ")?;
    let mut tag = [0u8; 2];
    read_at(file, at + 8, &mut tag)?;
    Some(u16::from_le_bytes(tag))
}

/// Seconds of audio from the `data` chunk's start to the end of the file, by the `fmt `
/// chunk's channels, sample width and rate: the length of a WAV whose header leaves it
/// unknown (a data size of 0xFFFFFFFF, as `ffmpeg -f wav -` writes, also past 4 GiB).
/// symphonia then gives no length, and such a file was decoded whole where the same audio
/// with a correct header is sampled. The frame size is worked out, not read from the block
/// size, which may lie (65535 made the length 0 s). `None` without a `fmt ` chunk of
/// whole-byte PCM, float, A-law or mu-law samples (compressed blocks hold many frames) and
/// a `data` chunk.
pub(super) fn seconds_to_end(file: &mut File, file_len: u64) -> Option<f64> {
    let (at, len) = find_chunk(file, file_len, b"fmt ")?;
    if len < 16 {
        return None;
    }
    let mut fmt = [0u8; 16];
    read_at(file, at + 8, &mut fmt)?;
    let tag = u16::from_le_bytes([fmt[0], fmt[1]]);
    let channels = u16::from_le_bytes([fmt[2], fmt[3]]);
    let rate = u32::from_le_bytes(fmt[4..8].try_into().ok()?);
    let bits = u16::from_le_bytes([fmt[14], fmt[15]]);
    // A-law and mu-law samples are a byte each, whatever the width field says (symphonia
    // reads them so).
    let width = match tag {
        6 | 7 => 1,
        1 | 3 | WAVE_FORMAT_EXTENSIBLE if bits % 8 == 0 => bits / 8,
        _ => 0,
    };
    let block = channels.checked_mul(width)?;
    let data_start = find_data_chunk(file, file_len)? + 8;
    (rate > 0 && block > 0)
        .then(|| (file_len.saturating_sub(data_start) / u64::from(block)) as f64 / f64::from(rate))
}

/// The offset of the `data` chunk's header.
fn find_data_chunk(file: &mut File, file_len: u64) -> Option<u64> {
    find_chunk(file, file_len, b"data").map(|(at, _)| at)
}

/// The offset of the first `tag` chunk's header and the size it states, walking the chunks
/// from offset 12 by their sizes (padded to even, as RIFF pads them).
pub(super) fn find_chunk(file: &mut File, file_len: u64, tag: &[u8; 4]) -> Option<(u64, u32)> {
    let mut at = 12u64;
    for _ in 0..MAX_CHUNKS {
        if at.checked_add(8)? > file_len {
            return None;
        }
        let mut header = [0u8; 8];
        read_at(file, at, &mut header)?;
        let len = u32::from_le_bytes(header[4..].try_into().ok()?);
        if &header[..4] == tag {
            return Some((at, len));
        }
        let len = u64::from(len);
        at = at + 8 + len + (len & 1);
    }
    None
}

/// Reads exactly `buf.len()` bytes at `offset`.
pub(super) fn read_at(file: &mut File, offset: u64, buf: &mut [u8]) -> Option<()> {
    file.seek(SeekFrom::Start(offset)).ok()?;
    file.read_exact(buf).ok()
}

/// A WAV file read in place, with some four-byte header fields shown other than they are
/// stored ([`SizeRepair`]). Reads and seeks go to the file; bytes that fall on a patched
/// field are replaced in the caller's buffer.
pub(super) struct PatchedSizes {
    file: File,
    /// The file position, as this source has moved it.
    pos: u64,
    patches: Vec<(u64, [u8; 4])>,
}

impl Read for PatchedSizes {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        let (start, end) = (self.pos, self.pos + n as u64);
        for (at, bytes) in &self.patches {
            for (i, &byte) in bytes.iter().enumerate() {
                let offset = at + i as u64;
                if (start..end).contains(&offset) {
                    buf[(offset - start) as usize] = byte;
                }
            }
        }
        self.pos = end;
        Ok(n)
    }
}

impl Seek for PatchedSizes {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.pos = self.file.seek(to)?;
        Ok(self.pos)
    }
}

impl MediaSource for PatchedSizes {
    fn is_seekable(&self) -> bool {
        self.file.is_seekable()
    }

    fn byte_len(&self) -> Option<u64> {
        self.file.byte_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A WAV header (fmt, a LIST chunk of odd length, data) of `audio` bytes with the given
    /// RIFF and data sizes, then the audio.
    fn wav(riff: u32, data: u32, audio: usize) -> Vec<u8> {
        let mut bytes = b"RIFF".to_vec();
        bytes.extend(riff.to_le_bytes());
        bytes.extend(b"WAVEfmt ");
        bytes.extend(16u32.to_le_bytes());
        bytes.extend([1, 0, 1, 0, 0x22, 0x56, 0, 0, 0x44, 0xac, 0, 0, 2, 0, 16, 0]);
        bytes.extend(b"LIST");
        bytes.extend(3u32.to_le_bytes());
        bytes.extend([1, 2, 3, 0]);
        bytes.extend(b"data");
        bytes.extend(data.to_le_bytes());
        bytes.extend(std::iter::repeat_n(7u8, audio));
        bytes
    }

    fn planned(bytes: &[u8]) -> (Option<SizeRepair>, File) {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        let plan = SizeRepair::plan(&mut file, bytes.len() as u64);
        (plan, file)
    }

    fn read_all(source: &mut PatchedSizes) -> Vec<u8> {
        // From where `apply` left it (rewound), in pieces of 3 bytes: a patch split across
        // reads still shows.
        let mut out = Vec::new();
        let mut buf = [0u8; 3];
        loop {
            let n = source.read(&mut buf).unwrap();
            if n == 0 {
                return out;
            }
            out.extend(&buf[..n]);
        }
    }

    #[test]
    fn a_header_never_filled_in_is_shown_with_the_files_sizes() {
        let good = wav(4 + 24 + 12 + 8 + 100, 100, 100);
        for (riff, data) in [(0, 0), (36, 0), (12, 100), (0, 0x7fff_fff0)] {
            let (plan, file) = planned(&wav(riff, data, 100));
            let repair = plan.unwrap_or_else(|| panic!("{riff} {data}: no plan"));
            let warning = repair.warning().unwrap();
            assert_eq!(
                read_all(&mut repair.apply(file).unwrap()),
                good,
                "{riff} {data}"
            );
            assert!(warning.contains("an unfinished recording?"), "{warning}");
        }
    }

    #[test]
    fn sizes_that_are_right_or_unknown_are_left_alone() {
        assert_eq!(planned(&wav(4 + 24 + 12 + 8 + 100, 100, 100)).0, None);
        assert_eq!(planned(&wav(u32::MAX, u32::MAX, 100)).0, None);
        // No audio after the header: nothing to read to; a stale size is shown as 0.
        let (plan, _) = planned(&wav(0, 0, 0));
        assert_eq!(plan.unwrap().patches.len(), 1, "only the RIFF size");
        let (plan, _) = planned(&wav(0, 100, 0));
        assert_eq!(
            plan.unwrap().patches[0],
            (52, [0; 4]),
            "the data size, at 48 + 4"
        );
        // No data chunk at all.
        let mut bytes = wav(0, 0, 100);
        let data = bytes.windows(4).position(|w| w == b"data").unwrap();
        bytes[data..data + 4].copy_from_slice(b"junk");
        bytes[data + 4..data + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(planned(&bytes).0, None);
    }

    /// An extensible header whose mask has bits past the standard positions is shown with
    /// them cleared, the rest of the file as it is; a standard mask is left alone.
    /// A WAV of `channels` 16-bit channels (40 bytes of audio) with an extensible header
    /// of `mask` and the sub-format whose tag is `sub_format`.
    fn extensible_wav(channels: u16, mask: u32, sub_format: u8) -> Vec<u8> {
        let mut fmt = vec![0xFE, 0xFF];
        fmt.extend(channels.to_le_bytes());
        fmt.extend([0x22, 0x56, 0, 0, 0x88, 0x58, 1, 0, 4, 0, 16, 0]);
        fmt.extend(22u16.to_le_bytes());
        fmt.extend(16u16.to_le_bytes());
        fmt.extend(mask.to_le_bytes());
        fmt.extend([
            sub_format, 0, 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xaa, 0, 0x38, 0x9b, 0x71,
        ]);
        let audio = [3u8; 40];
        let mut bytes = b"RIFF".to_vec();
        bytes.extend((4 + 8 + fmt.len() as u32 + 8 + 40).to_le_bytes());
        bytes.extend(b"WAVEfmt ");
        bytes.extend((fmt.len() as u32).to_le_bytes());
        bytes.extend(&fmt);
        bytes.extend(b"data");
        bytes.extend(40u32.to_le_bytes());
        bytes.extend(audio);
        bytes
    }

    #[test]
    fn a_mask_past_the_standard_positions_is_shown_without_those_bits() {
        let extensible = |mask: u32| extensible_wav(2, mask, 1);
        for (mask, shown) in [(0x8000_0000u32, 0u32), (0x0010_0003, 0x3)] {
            let (plan, file) = planned(&extensible(mask));
            let repair = plan.unwrap_or_else(|| panic!("{mask:#x}: no plan"));
            let warning = repair.warning().unwrap();
            assert!(warning.contains("no reader knows"), "{warning}");
            assert!(!warning.contains("sizes"), "{warning}");
            assert_eq!(
                read_all(&mut repair.apply(file).unwrap()),
                extensible(shown)
            );
        }
        assert_eq!(planned(&extensible(0x3)).0, None);
    }

    /// An extensible header of more channels than a mask can name is shown as the plain
    /// header of its sub-format (PCM or float), without a warning: it is a valid file. Up
    /// to 18 channels, and sub-formats the plain readers would read otherwise, it is left
    /// alone.
    #[test]
    fn an_extensible_header_of_more_than_18_channels_is_shown_as_a_plain_one() {
        for (sub_format, channels) in [(1u8, 19u16), (3, 26), (1, 24)] {
            let bytes = extensible_wav(channels, 0, sub_format);
            let (plan, file) = planned(&bytes);
            let repair = plan.unwrap_or_else(|| panic!("{channels}: no plan"));
            assert_eq!(repair.warning(), None);
            let mut shown = bytes.clone();
            shown[20..22].copy_from_slice(&u16::from(sub_format).to_le_bytes());
            assert_eq!(read_all(&mut repair.apply(file).unwrap()), shown);
        }
        assert_eq!(planned(&extensible_wav(18, 0, 1)).0, None);
        assert_eq!(planned(&extensible_wav(20, 0, 7)).0, None, "mu-law");
    }

    /// A piped WAV's length counts a byte per A-law sample whatever its width field says,
    /// and whole-byte PCM by its width, never by the block size (which may lie).
    #[test]
    fn the_length_to_the_end_counts_frames_by_the_sample_width() {
        let header = |tag: u16, bits: u16, block: u16| {
            let mut fmt = tag.to_le_bytes().to_vec();
            fmt.extend(1u16.to_le_bytes());
            fmt.extend(8_000u32.to_le_bytes());
            fmt.extend(16_000u32.to_le_bytes());
            fmt.extend(block.to_le_bytes());
            fmt.extend(bits.to_le_bytes());
            let mut bytes = b"RIFF\xff\xff\xff\xffWAVEfmt ".to_vec();
            bytes.extend(16u32.to_le_bytes());
            bytes.extend(fmt);
            bytes.extend(b"data\xff\xff\xff\xff");
            bytes.extend(vec![0u8; 16_000]);
            bytes
        };
        for (tag, bits, block, seconds) in [
            (6u16, 16u16, 2u16, 2.0),
            (7, 8, 1, 2.0),
            (1, 16, 65_535, 1.0),
            (3, 32, 4, 0.5),
        ] {
            let bytes = header(tag, bits, block);
            let (_, mut file) = planned(&bytes);
            assert_eq!(
                seconds_to_end(&mut file, bytes.len() as u64),
                Some(seconds),
                "tag {tag}"
            );
        }
    }

    #[test]
    fn wave_is_known_by_its_first_twelve_bytes() {
        assert!(is_wave(b"RIFF\0\0\0\0WAVE"));
        assert!(!is_wave(b"RIFF\0\0\0\0AVI "));
        assert!(!is_wave(b"RIFF"));
    }
}
