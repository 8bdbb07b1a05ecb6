//! Guards against damage lofty reads past without an error, even in its strict mode: the
//! tag it then gives is not the one the file holds, and writing that tag back would replace
//! or drop what players show. The read-back check of the tagged copy cannot see this, since
//! it compares two readings by the same lofty, both wrong the same way. So such a file is
//! refused before its tag is read. These are checks of sizes and names, not parsers: every
//! value is still read by lofty.
//!
//! - An MP3 that opens with two ID3v2 tags one after the other. Players read the first.
//!   lofty (0.25) merges the second's frames into it, each one replacing the first's frame
//!   of the same ID, and writes that merge where the first was.
//! - An MP4 atom on the way to the item list (`moov`, `udta`, `meta`, `ilst`, each item)
//!   whose size runs past its parent. lofty stops reading that parent there without an
//!   error, so every item from that one on is missing from the tag it gives, and from the
//!   file it writes.
//! - A fragmented MP4 (`moof` fragments, announced by `moov.mvex`): its fragments address
//!   their audio from the file's start, and lofty (0.25) grows `moov` without moving
//!   those offsets, so every fragment then points into the wrong bytes (the read-back
//!   compares tags, not audio). It is left untagged.

use std::io::{self, Read, Seek, SeekFrom};

/// Why a guard refuses a file, or could not look at it.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// Damage the tag library would read past.
    #[error("{0}")]
    Malformed(String),
    /// The file cannot be read.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Fills `buf` from `reader` at `pos`; `false` when the file ends first.
fn read_at<R: Read + Seek>(reader: &mut R, pos: u64, buf: &mut [u8]) -> io::Result<bool> {
    reader.seek(SeekFrom::Start(pos))?;
    match reader.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(err) => Err(err),
    }
}

/// How far [`first_non_zero`] looks: a file of zeros (a sparse file of gigabytes) is not
/// read to its end for a guard.
const ZERO_SCAN_LIMIT: u64 = 1 << 20;

/// Where the first byte that is not zero is (lofty skips zero bytes before an MP3's first
/// tag); `None` when there is none in the first [`ZERO_SCAN_LIMIT`] bytes.
fn first_non_zero<R: Read>(reader: &mut R) -> io::Result<Option<u64>> {
    let mut buf = [0u8; 4096];
    let mut pos = 0u64;
    loop {
        if pos >= ZERO_SCAN_LIMIT {
            return Ok(None);
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(None),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if let Some(i) = buf[..n].iter().position(|&b| b != 0) {
            return Ok(Some(pos + i as u64));
        }
        pos += n as u64;
    }
}

/// Refuses an MP3 whose first ID3v2 tag is followed at once by another.
pub fn one_id3v2_tag<R: Read + Seek>(reader: &mut R) -> Result<(), GuardError> {
    reader.rewind()?;
    let Some(start) = first_non_zero(reader)? else {
        return Ok(());
    };
    let mut header = [0u8; 10];
    if !read_at(reader, start, &mut header)? || &header[..3] != b"ID3" {
        return Ok(());
    }
    // The size is synchsafe (7 bits a byte) and leaves out the header and the footer,
    // which ID3v2.4 flags with 0x10 (lofty takes the flag from 2.3 tags too).
    let size = header[6..]
        .iter()
        .fold(0u64, |n, &b| (n << 7) | u64::from(b & 0x7f));
    let footer = matches!(header[3], 3 | 4) && header[5] & 0x10 != 0;
    let end = start + 10 + size + if footer { 10 } else { 0 };
    let mut next = [0u8; 3];
    if read_at(reader, end, &mut next)? && &next == b"ID3" {
        return Err(GuardError::Malformed(format!(
            "two ID3v2 tags one after the other (the second at byte {end}): players read \
             the first, the tag library would rewrite it merged with the second"
        )));
    }
    Ok(())
}

/// An MP4 atom's place in the file.
struct Atom {
    name: [u8; 4],
    /// Where its children start.
    body: u64,
    /// Where it ends.
    end: u64,
}

impl Atom {
    /// `©nam`, `ilst`: the name as MP4 tools print it (its bytes as Latin-1).
    fn name(name: &[u8; 4]) -> String {
        name.iter().map(|&b| char::from(b)).collect()
    }
}

/// The atoms that follow one another in `start..end` (the body of `parent`), and why
/// the first that does not fit there does not (the list stops before it).
fn atoms_in<R: Read + Seek>(
    reader: &mut R,
    start: u64,
    end: u64,
    parent: &str,
) -> io::Result<(Vec<Atom>, Option<String>)> {
    let mut atoms = Vec::new();
    let mut pos = start;
    // Fewer than 8 bytes left are no atom; lofty stops there too and loses nothing.
    while end.saturating_sub(pos) >= 8 {
        let mut header = [0u8; 8];
        if !read_at(reader, pos, &mut header)? {
            break;
        }
        let name = [header[4], header[5], header[6], header[7]];
        let left = end - pos;
        let (size, header_len) =
            match u32::from_be_bytes([header[0], header[1], header[2], header[3]]) {
                // Up to the end of what holds it.
                0 => (left, 8),
                // A 64-bit size follows the name.
                1 => {
                    let mut size = [0u8; 8];
                    let whole = left >= 16 && read_at(reader, pos + 8, &mut size)?;
                    (
                        if whole {
                            u64::from_be_bytes(size)
                        } else {
                            u64::MAX
                        },
                        16,
                    )
                }
                size => (u64::from(size), 8),
            };
        if size < header_len || size > left {
            let why = format!(
                "the MP4 atom `{}` at byte {pos} is {size} bytes long, but only {left} are \
                 left in its {parent}",
                Atom::name(&name)
            );
            return Ok((atoms, Some(why)));
        }
        atoms.push(Atom {
            name,
            body: pos + header_len,
            end: pos + size,
        });
        pos += size;
    }
    Ok((atoms, None))
}

/// The children of `parent`, each of which must fit inside it.
fn children<R: Read + Seek>(reader: &mut R, parent: &Atom) -> Result<Vec<Atom>, GuardError> {
    let name = format!("`{}`", Atom::name(&parent.name));
    match atoms_in(reader, parent.body, parent.end, &name)? {
        (atoms, None) => Ok(atoms),
        (_, Some(why)) => Err(GuardError::Malformed(format!(
            "{why}: the tag library would drop the tags from there on"
        ))),
    }
}

/// Refuses an MP4 file where an atom on the way to the item list lofty reads
/// (`moov.udta.meta.ilst`), or in it, runs past its parent. Damage elsewhere, or before
/// `moov` is found, is left to lofty, which reads no tag past it.
pub fn mp4_atoms_fit<R: Read + Seek>(reader: &mut R) -> Result<(), GuardError> {
    let len = reader.seek(SeekFrom::End(0))?;
    let (top, _) = atoms_in(reader, 0, len, "file")?;
    let Some(moov) = top.into_iter().find(|a| &a.name == b"moov") else {
        return Ok(());
    };
    for udta in children(reader, &moov)?
        .into_iter()
        .filter(|a| &a.name == b"udta")
    {
        // lofty reads the first `meta` of each `udta` and the first `ilst` of that.
        let Some(mut meta) = children(reader, &udta)?
            .into_iter()
            .find(|a| &a.name == b"meta")
        else {
            continue;
        };
        // A `meta` is a full atom (4 bytes of version and flags before its children),
        // except where QuickTime writes it without them: lofty's test, the second word is
        // a child's name.
        let mut head = [0u8; 8];
        let bare = read_at(reader, meta.body, &mut head)?
            && matches!(&head[4..], b"hdlr" | b"ilst" | b"mhdr" | b"ctry" | b"lang");
        if !bare {
            meta.body += 4;
        }
        let Some(ilst) = children(reader, &meta)?
            .into_iter()
            .find(|a| &a.name == b"ilst")
        else {
            continue;
        };
        for item in children(reader, &ilst)? {
            children(reader, &item)?;
        }
    }
    Ok(())
}

/// Whether an MP4 file is fragmented: a `moof` at the top or an `mvex` in `moov` (what
/// `-movflags frag_keyframe`, `empty_moov` or `cmaf` write).
pub fn mp4_is_fragmented<R: Read + Seek>(reader: &mut R) -> io::Result<bool> {
    let len = reader.seek(SeekFrom::End(0))?;
    let (top, _) = atoms_in(reader, 0, len, "file")?;
    if top.iter().any(|a| &a.name == b"moof") {
        return Ok(true);
    }
    let Some(moov) = top.iter().find(|a| &a.name == b"moov") else {
        return Ok(false);
    };
    let (inside, _) = atoms_in(reader, moov.body, moov.end, "`moov`")?;
    Ok(inside.iter().any(|a| &a.name == b"mvex"))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::Cursor;
    use std::path::Path;

    use super::*;
    use crate::tags::{TagError, TagOptions, TagValues, tag_file};

    /// An ID3v2.3 tag holding `frames` (ID, text).
    fn id3(frames: &[(&str, &str)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (id, text) in frames {
            body.extend(id.as_bytes());
            body.extend(&(text.len() as u32 + 1).to_be_bytes());
            body.extend([0, 0, 0]);
            body.extend(text.as_bytes());
        }
        let n = body.len() as u32;
        let size = [n >> 21, n >> 14, n >> 7, n].map(|b| (b & 0x7f) as u8);
        [&b"ID3\x03\x00\x00"[..], &size, &body].concat()
    }

    fn checked_mp3(bytes: Vec<u8>) -> Result<(), GuardError> {
        one_id3v2_tag(&mut Cursor::new(bytes))
    }

    #[test]
    fn a_second_id3v2_tag_right_after_the_first_is_refused() {
        let first = id3(&[("TIT2", "first")]);
        let second = id3(&[("TIT2", "second"), ("TBPM", "99")]);
        let audio = [0xff, 0xfb, 0x90, 0x64, 0, 0, 0, 0];
        assert!(checked_mp3([&first[..], &audio].concat()).is_ok());
        assert!(checked_mp3([&[0, 0][..], &first, &audio].concat()).is_ok());
        assert!(checked_mp3(audio.to_vec()).is_ok());
        assert!(checked_mp3(Vec::new()).is_ok());
        let err = checked_mp3([&first[..], &second, &audio].concat()).unwrap_err();
        assert!(
            matches!(&err, GuardError::Malformed(why) if why.starts_with(
                &format!("two ID3v2 tags one after the other (the second at byte {})", first.len())
            )),
            "{err}"
        );
        // After the zero bytes lofty skips, too.
        let padded = [&[0, 0, 0][..], &first, &second, &audio].concat();
        assert!(checked_mp3(padded).is_err());
    }

    /// An atom `name` holding `body`.
    fn atom(name: &[u8; 4], body: &[u8]) -> Vec<u8> {
        [&(body.len() as u32 + 8).to_be_bytes()[..], name, body].concat()
    }

    /// An item holding one `data` atom of `value`: text, or with `tmpo` a 16-bit integer.
    fn item(name: &[u8; 4], value: &[u8]) -> Vec<u8> {
        let code = if name == b"tmpo" { 21 } else { 1 };
        let data = atom(b"data", &[&[0, 0, 0, code, 0, 0, 0, 0][..], value].concat());
        atom(name, &data)
    }

    /// A file whose `moov.udta.meta.ilst` holds `items`, `meta` full or not.
    fn mp4(items: &[u8], full_meta: bool) -> Vec<u8> {
        let hdlr = atom(b"hdlr", &[0u8; 25]);
        let flags: &[u8] = if full_meta { &[0, 0, 0, 0] } else { &[] };
        let meta = atom(b"meta", &[flags, &hdlr, &atom(b"ilst", items)].concat());
        let moov = atom(b"moov", &atom(b"udta", &meta));
        [
            atom(b"ftyp", b"M4A \0\0\0\0"),
            moov,
            atom(b"mdat", &[1; 16]),
        ]
        .concat()
    }

    fn checked_mp4(bytes: Vec<u8>) -> Result<(), GuardError> {
        mp4_atoms_fit(&mut Cursor::new(bytes))
    }

    #[test]
    fn an_mp4_item_that_runs_past_its_list_is_refused() {
        let title = item(b"\xa9nam", b"title here");
        let tempo = item(b"tmpo", &[0, 99]);
        let items = [&title[..], &tempo].concat();
        for full in [true, false] {
            assert!(checked_mp4(mp4(&items, full)).is_ok());
            let mut long = items.clone();
            long[..4].copy_from_slice(&0x00ff_ffffu32.to_be_bytes());
            let err = checked_mp4(mp4(&long, full)).unwrap_err().to_string();
            assert!(
                err.starts_with("the MP4 atom `©nam` at byte ")
                    && err.ends_with(
                        "is 16777215 bytes long, but only 60 are left in its `ilst`: \
                         the tag library would drop the tags from there on"
                    ),
                "{err}"
            );
            // A `data` atom that runs past its item, and an item shorter than its header.
            let mut long_data = items.clone();
            long_data[11] += 1;
            assert!(checked_mp4(mp4(&long_data, full)).is_err());
            let mut short = items.clone();
            short[3] = 4;
            assert!(checked_mp4(mp4(&short, full)).is_err());
        }
        // An empty list, no tags at all, and a file too short to say anything pass.
        assert!(checked_mp4(mp4(&[], true)).is_ok());
        assert!(checked_mp4(atom(b"ftyp", b"M4A ")).is_ok());
        assert!(checked_mp4(b"\0\0".to_vec()).is_ok());
    }

    /// `tag_file` with a tempo and a key refuses `bytes` as damaged, leaving them as they were.
    fn refused_whole(name: &str, bytes: &[u8]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        let values = TagValues {
            bpm: Some(120.0),
            key: Some("A minor".parse().unwrap()),
            replaygain: None,
        };
        let result = tag_file(&path, &values, &TagOptions::default());
        assert!(fs::read(&path).unwrap() == bytes, "rewritten: {result:?}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "a copy left");
        match result {
            Err(err @ TagError::Malformed(_)) => err.to_string(),
            other => panic!("{}: {other:?}", Path::new(name).display()),
        }
    }

    /// MPEG-1 layer III frames, 128 kbit/s at 44.1 kHz (417 bytes each), of silence.
    fn mpeg_frames() -> Vec<u8> {
        let mut frame = vec![0u8; 417];
        frame[..4].copy_from_slice(&[0xff, 0xfb, 0x90, 0x64]);
        frame.repeat(8)
    }

    /// Before, the file was tagged: the first tag, the one players read, was replaced by
    /// the second's frames merged into it (its title `second`) plus the new ones.
    #[test]
    fn an_mp3_with_two_id3v2_tags_is_not_tagged() {
        let first = id3(&[("TIT2", "first")]);
        let second = id3(&[("TIT2", "second"), ("TBPM", "99")]);
        let bytes = [&first[..], &second, &mpeg_frames()].concat();
        let err = refused_whole("two.mp3", &bytes);
        assert!(
            err.starts_with("damaged tags or container: two ID3v2 tags one after the other"),
            "{err}"
        );
        // One tag is tagged as ever.
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("one.mp3");
        fs::write(&one, [&first[..], &mpeg_frames()].concat()).unwrap();
        let values = TagValues {
            bpm: Some(120.0),
            ..TagValues::default()
        };
        assert!(
            tag_file(&one, &values, &TagOptions::default())
                .unwrap()
                .written
        );
    }

    /// Before, the file was tagged: lofty stopped reading the list at the title, so the
    /// title was dropped and the `tmpo` after it (99) replaced as if there were none.
    #[test]
    fn an_mp4_whose_item_runs_past_its_list_is_not_tagged() {
        let items = [item(b"\xa9nam", b"title here"), item(b"tmpo", &[0, 99])].concat();
        let mut long = items.clone();
        long[..4].copy_from_slice(&0x00ff_ffffu32.to_be_bytes());
        let err = refused_whole("a.m4a", &mp4(&long, true));
        assert!(
            err.starts_with("damaged tags or container: the MP4 atom `©nam`"),
            "{err}"
        );
        // The same list, whole: its tempo is kept and the key written beside the title.
        let dir = tempfile::tempdir().unwrap();
        let whole = dir.path().join("a.m4a");
        fs::write(&whole, mp4(&items, true)).unwrap();
        let values = TagValues {
            bpm: Some(120.0),
            key: Some("A minor".parse().unwrap()),
            replaygain: None,
        };
        let report = tag_file(&whole, &values, &TagOptions::default()).unwrap();
        assert_eq!(
            report.summary(),
            "tmpo: 99 kept (new 120); ----:com.apple.iTunes:initialkey: - -> Am"
        );
        let tag = crate::tags::formats::load(&mut fs::File::open(&whole).unwrap()).unwrap();
        let items = tag.items();
        assert!(items.iter().any(|i| i.ends_with("nam")), "{items:?}");
    }
}
