//! The one seam every result file goes through, after hyperfine's `Exporter`: a format
//! turns a value into bytes ([`Exporter::serialize`]), and [`write`] decides where they go.
//!
//! The values are serde structs that *are* the formats: a `#[derive(Serialize, Default)]`
//! record's fields are a CSV's columns, in order ([`Csv`], [`CsvLine`], [`csv_header`]), so
//! no column list is kept by hand; [`Json`] writes `summary.json`, `timings.json` and
//! `compare.json`; [`Html`] renders a [`Page`].

use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::html::Page;
use crate::input;

/// A file format: the bytes of one value.
///
/// For implementations: the bytes must depend only on `value` (no clock, no host), so that a
/// deterministic value gives the same file on every run.
pub trait Exporter<T: ?Sized> {
    /// The bytes of `value` in this format.
    fn serialize(&self, value: &T) -> anyhow::Result<Vec<u8>>;
}

/// A CSV file: the header named by the record type's fields, then one line per record.
#[derive(Debug, Clone, Copy, Default)]
pub struct Csv;

/// One CSV line, no header: a row appended as its file finishes.
#[derive(Debug, Clone, Copy, Default)]
pub struct CsvLine;

/// Pretty-printed JSON with a trailing newline.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

/// A self-contained HTML report page.
#[derive(Debug, Clone, Copy, Default)]
pub struct Html;

impl<R: Serialize + Default> Exporter<[R]> for Csv {
    fn serialize(&self, records: &[R]) -> anyhow::Result<Vec<u8>> {
        let mut out = csv_header::<R>()?;
        for record in records {
            out.extend(CsvLine.serialize(record)?);
        }
        Ok(out)
    }
}

impl<R: Serialize> Exporter<R> for CsvLine {
    fn serialize(&self, record: &R) -> anyhow::Result<Vec<u8>> {
        let mut writer = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        writer.serialize(record)?;
        writer.into_inner().context("cannot flush a CSV line")
    }
}

impl<T: Serialize + ?Sized> Exporter<T> for Json {
    fn serialize(&self, value: &T) -> anyhow::Result<Vec<u8>> {
        let mut bytes = serde_json::to_vec_pretty(value)?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}

impl Exporter<Page> for Html {
    fn serialize(&self, page: &Page) -> anyhow::Result<Vec<u8>> {
        Ok(page.render().into_bytes())
    }
}

/// The header line of a CSV of `R` records: its field names, in order.
pub fn csv_header<R: Serialize + Default>() -> anyhow::Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.serialize(R::default())?;
    let bytes = writer.into_inner().context("cannot flush a CSV header")?;
    let end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |i| i + 1);
    Ok(bytes[..end].to_vec())
}

/// How many columns a CSV of `R` records has.
pub fn csv_columns<R: Serialize + Default>() -> anyhow::Result<usize> {
    let header = csv_header::<R>()?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(header.as_slice());
    let mut record = csv::ByteRecord::new();
    reader.read_byte_record(&mut record)?;
    Ok(record.len())
}

/// Writes `value` in `format` to `path`, naming the path on failure.
pub fn write<T: ?Sized>(path: &Path, format: &impl Exporter<T>, value: &T) -> anyhow::Result<()> {
    super::write_file(path, &format.serialize(value)?)
}

/// The JSON value at `path` (`what` names it in errors), `None` when there is no file.
/// Read only as a regular file of at most [`input::MAX_SMALL_BYTES`]: a pipe or a link to
/// `/dev/zero` in its place hung the reader or filled memory.
pub fn read_json<T: DeserializeOwned>(path: &Path, what: &str) -> anyhow::Result<Option<T>> {
    let Some(bytes) = input::read_regular_if_any(path, input::MAX_SMALL_BYTES, "")? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .with_context(|| format!("{} is not {what}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Serialize)]
    struct Record {
        name: String,
        n: u8,
    }

    #[test]
    fn csv_snapshot() {
        let records = [
            Record {
                name: "a, b".into(),
                n: 1,
            },
            Record {
                name: "c\"d".into(),
                n: 2,
            },
        ];
        assert_eq!(
            Csv.serialize(&records[..]).unwrap(),
            b"name,n\n\"a, b\",1\n\"c\"\"d\",2\n"
        );
        assert_eq!(Csv.serialize(&[] as &[Record]).unwrap(), b"name,n\n");
        assert_eq!(CsvLine.serialize(&records[1]).unwrap(), b"\"c\"\"d\",2\n");
        assert_eq!(csv_columns::<Record>().unwrap(), 2);
    }

    #[test]
    fn json_snapshot() {
        let value = Record {
            name: "x".into(),
            n: 3,
        };
        assert_eq!(
            Json.serialize(&value).unwrap(),
            b"{\n  \"name\": \"x\",\n  \"n\": 3\n}\n"
        );
    }
}
