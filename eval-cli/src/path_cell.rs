//! The `path` cell of a row, lossless: a file name is bytes on Unix, a CSV cell is UTF-8
//! text, and two files must never share a cell (a resumed run would give one the other's
//! row). [`path_cell`] and [`parse_path_cell`] are the one pair that crosses between them;
//! rows are matched on the path they decode to, never on a lossy form.
//!
//! # The rule
//! - A name that is valid UTF-8 is written as it is (the cells of ordinary names are the
//!   same bytes as ever).
//! - A byte that is not part of valid UTF-8 (always 0x80 or above) is written `\xNN`, two
//!   upper-case hex digits.
//! - A backslash is doubled only where it could be read as the start of an escape: when
//!   what follows it is a backslash, an escaped byte, or `x` and two upper-case hex digits
//!   from `80` to `FF`. Every other backslash (`C:\music`, `a\b`) is written as it is.
//!
//! Reading is the reverse, left to right: `\\` is one backslash, `\xNN` with NN from `80` to
//! `FF` is that byte, and any other backslash is itself. So every cell reads back as the
//! exact bytes that were written, and distinct paths have distinct cells.

use std::path::{Path, PathBuf};

/// The cell of `path`: its bytes, with the escapes of the module's rule.
pub fn path_cell(path: &Path) -> String {
    let bytes = path.as_os_str().as_encoded_bytes();
    // Which bytes are not part of valid UTF-8 (each becomes `\xNN`).
    let mut lone = Vec::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        lone.extend(std::iter::repeat_n(false, chunk.valid().len()));
        lone.extend(std::iter::repeat_n(true, chunk.invalid().len()));
    }
    let mut cell = Vec::with_capacity(bytes.len());
    for (i, &byte) in bytes.iter().enumerate() {
        if lone[i] {
            cell.extend(format!("\\x{byte:02X}").bytes());
            continue;
        }
        cell.push(byte);
        let doubled = byte == b'\\'
            && match bytes.get(i + 1..) {
                Some([b'\\', ..]) => true,
                Some([b'x', hi, lo, ..]) => escaped_byte(*hi, *lo).is_some(),
                Some([_, ..]) => lone[i + 1],
                _ => false,
            };
        if doubled {
            cell.push(b'\\');
        }
    }
    String::from_utf8(cell).expect("valid UTF-8 runs and ASCII escapes")
}

/// The byte that `\xHL` stands for: upper-case hex from `80` to `FF`.
fn escaped_byte(hi: u8, lo: u8) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let byte = digit(hi)? << 4 | digit(lo)?;
    (byte >= 0x80).then_some(byte)
}

/// The path a cell stands for: [`path_cell`] read back (any cell reads as some path).
pub fn parse_path_cell(cell: &str) -> PathBuf {
    let text = cell.as_bytes();
    let mut bytes = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match &text[i..] {
            [b'\\', b'\\', ..] => {
                bytes.push(b'\\');
                i += 2;
            }
            [b'\\', b'x', hi, lo, ..] if escaped_byte(*hi, *lo).is_some() => {
                bytes.extend(escaped_byte(*hi, *lo));
                i += 4;
            }
            [byte, ..] => {
                bytes.push(*byte);
                i += 1;
            }
            [] => unreachable!("i < len"),
        }
    }
    path_from_bytes(bytes)
}

#[cfg(unix)]
fn path_from_bytes(bytes: Vec<u8>) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(bytes))
}

/// Elsewhere a path is not arbitrary bytes; what is not UTF-8 is read lossily.
#[cfg(not(unix))]
fn path_from_bytes(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(all(test, unix))]
mod tests {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    use super::*;

    fn path(bytes: &[u8]) -> &Path {
        Path::new(OsStr::from_bytes(bytes))
    }

    #[test]
    fn utf8_names_are_written_as_they_are() {
        for name in [
            "lib/sub/01-96.wav",
            "a, b \"c\".wav",
            "Café/naïve ♫.flac",
            "C:\\music\\x.wav",
            "a\\b",
            "ends with \\",
            "\\x41 is not an escape",
            "\\xe9 lower case is not an escape",
        ] {
            assert_eq!(path_cell(Path::new(name)), name);
            assert_eq!(parse_path_cell(name), Path::new(name));
        }
    }

    #[test]
    fn latin1_names_get_distinct_cells_that_read_back_exactly() {
        let e_acute = path(b"caf\xE9.wav");
        let e_grave = path(b"caf\xE8.wav");
        assert_eq!(path_cell(e_acute), "caf\\xE9.wav");
        assert_eq!(path_cell(e_grave), "caf\\xE8.wav");
        assert_eq!(parse_path_cell(&path_cell(e_acute)), e_acute);
        assert_eq!(parse_path_cell(&path_cell(e_grave)), e_grave);
    }

    #[test]
    fn backslashes_that_look_like_escapes_are_doubled_and_read_back() {
        // A UTF-8 name spelling an escape must not read as the byte it spells.
        let spelled = Path::new("caf\\xE9.wav");
        assert_eq!(path_cell(spelled), "caf\\\\xE9.wav");
        assert_ne!(path_cell(spelled), path_cell(path(b"caf\xE9.wav")));
        let cases: [&[u8]; 8] = [
            b"caf\\xE9.wav",
            b"a\\\\b",
            b"a\\\xE9",
            b"\\\\\\",
            b"\xFF\xFE\\",
            b"\\x\xE9",
            b"mixed \xC3\xA9 and \xE9 and \\xFF",
            b"\xE2\x82",
        ];
        for bytes in cases {
            let cell = path_cell(path(bytes));
            assert_eq!(
                parse_path_cell(&cell).as_os_str().as_bytes(),
                bytes,
                "{cell}"
            );
        }
    }

    #[test]
    fn every_short_byte_string_reads_back_exactly() {
        // All strings of up to 4 bytes over an alphabet holding every kind of byte that
        // matters: escapes, their digits, UTF-8 leads and continuations, lone bytes.
        let alphabet = [b'\\', b'x', b'E', b'9', b'a', 0xC3, 0xA9, 0xE9, 0xFF];
        let mut strings: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..4 {
            let longer: Vec<Vec<u8>> = strings
                .iter()
                .flat_map(|s| {
                    alphabet.iter().map(move |b| {
                        let mut s = s.clone();
                        s.push(*b);
                        s
                    })
                })
                .collect();
            strings.extend(longer);
        }
        strings.sort();
        strings.dedup();
        let mut cells = std::collections::HashSet::new();
        for bytes in &strings {
            let cell = path_cell(path(bytes));
            assert_eq!(
                parse_path_cell(&cell).as_os_str().as_bytes(),
                &bytes[..],
                "{cell}"
            );
            assert!(cells.insert(cell), "two paths share a cell");
        }
    }
}
