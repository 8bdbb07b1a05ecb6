//! Where a row is stored: the BLAKE3 hash of a file's bytes, and of everything besides them
//! that decides its row. The hash is read through [`open_regular`] (a pipe or device is an
//! error at once, never a read that does not end) and checks the stop signal between
//! chunks, so a cancelled run or a passed deadline stops it whatever the file's size.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use analyzer_core::decode::open_regular;
use analyzer_core::{Error, ErrorKind, Stage, StopSignal};

use super::FileIdentity;
use crate::record;

/// The version of what is stored and of what may be stored. Part of every key, so rows
/// stored under another version are never read again. Bump it when a stored row's format,
/// meaning or the rule of what is stored changes (2: rows carry a checksum, decode
/// failures are no longer stored; 3: rows carry the key columns; 4: rows carry the loudness
/// columns; 5: a stored failure carries its row, which keeps a pulseless file's key and
/// loudness).
pub const SCHEMA: u32 = 5;

/// Bytes read at a time while hashing: memory stays flat whatever the file's size, and the
/// stop signal is checked this often.
pub(super) const HASH_CHUNK: usize = 256 << 10;

/// The settings half of a key: what, besides the file's bytes, decides its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Settings([u8; 32]);

impl Settings {
    /// The settings of rows made by an analyzer with this `fingerprint`
    /// ([`analyzer_core::Analyzer::fingerprint`]), formatted by this build of eval-cli and
    /// stored under this cache [`SCHEMA`].
    pub fn new(fingerprint: &str) -> Self {
        Self::with_schema(SCHEMA, fingerprint)
    }

    /// The settings as cache schema `schema` computed them (1 is the recipe of the
    /// builds before [`SCHEMA`] existed).
    pub(super) fn with_schema(schema: u32, fingerprint: &str) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(format!("tempo-scale result cache {schema}\n").as_bytes());
        hasher.update(fingerprint.as_bytes());
        hasher.update(b"\neval-cli ");
        hasher.update(env!("CARGO_PKG_VERSION").as_bytes());
        hasher.update(b"\n");
        hasher.update(&record::header());
        Settings(*hasher.finalize().as_bytes())
    }
}

/// Where a row is stored: the BLAKE3 hash of the file's bytes and of the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey {
    content: [u8; 32],
    settings: Settings,
}

impl CacheKey {
    /// The key of the file at `path` under `settings` (see [`hash_file`]; this one never
    /// stops early).
    pub fn of_file(path: &Path, settings: Settings) -> io::Result<Self> {
        hash_file(path, settings, &StopSignal::never())
            .map(|(key, _)| key)
            .map_err(io::Error::other)
    }

    /// The key of content whose BLAKE3 hash is `content` (an upload hashed as it arrived).
    pub fn of_hash(content: [u8; 32], settings: Settings) -> Self {
        CacheKey { content, settings }
    }

    /// The BLAKE3 hash of the content.
    pub fn content(&self) -> [u8; 32] {
        self.content
    }

    /// The key as stored: content hash, then settings hash.
    pub fn bytes(&self) -> [u8; 64] {
        let mut key = [0u8; 64];
        key[..32].copy_from_slice(&self.content);
        key[32..].copy_from_slice(&self.settings.0);
        key
    }
}

/// The key of `path` for an analyzer with this `fingerprint`.
pub fn key_for(path: &Path, fingerprint: &str) -> io::Result<CacheKey> {
    CacheKey::of_file(path, Settings::new(fingerprint))
}

/// The key of the file at `path` and its identity before it was read. The file is opened
/// with [`open_regular`] (a pipe, socket or device is an `unreadable` error at once) and
/// `stop` is checked before each chunk, so SIGTERM or the per-file deadline ends the hash
/// of any file.
pub fn hash_file(
    path: &Path,
    settings: Settings,
    stop: &StopSignal,
) -> Result<(CacheKey, FileIdentity), Error> {
    let mut file = open_regular(path)?;
    let identity = FileIdentity::of(&file.metadata().map_err(unreadable)?);
    let content = hash_until(&mut file, stop)?;
    Ok((CacheKey::of_hash(content, settings), identity))
}

fn hash_until(file: &mut File, stop: &StopSignal) -> Result<[u8; 32], Error> {
    let mut hasher = blake3::Hasher::new();
    let mut chunk = vec![0u8; HASH_CHUNK];
    loop {
        stop.check(Stage::Open)?;
        match file.read(&mut chunk) {
            Ok(0) => return Ok(*hasher.finalize().as_bytes()),
            Ok(n) => {
                hasher.update(&chunk[..n]);
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(unreadable(err)),
        }
    }
}

fn unreadable(err: io::Error) -> Error {
    Error::new(ErrorKind::Unreadable, Stage::Open, err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn the_streaming_hash_is_the_hash_of_the_bytes() {
        // Longer than one chunk and not a multiple of it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.bin");
        let bytes: Vec<u8> = (0..HASH_CHUNK * 2 + 12_345)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        std::fs::write(&path, &bytes).unwrap();
        let settings = Settings::new("x");
        assert_eq!(
            CacheKey::of_file(&path, settings).unwrap(),
            CacheKey::of_hash(*blake3::hash(&bytes).as_bytes(), settings)
        );
    }

    #[test]
    fn a_stopped_hash_ends_with_the_stop_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.bin");
        std::fs::write(&path, vec![7u8; HASH_CHUNK * 3]).unwrap();
        let cancel = Arc::new(AtomicBool::new(true));
        let stop = StopSignal::never().with_cancel_flag(cancel);
        let err = hash_file(&path, Settings::new("x"), &stop).unwrap_err();
        assert_eq!(
            (err.kind(), err.stage()),
            (ErrorKind::Cancelled, Stage::Open)
        );
        let past = StopSignal::never().with_deadline(std::time::Instant::now());
        let err = hash_file(&path, Settings::new("x"), &past).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut);
    }

    #[cfg(unix)]
    #[test]
    fn a_device_is_unreadable_at_once() {
        // Reading /dev/zero never ends: the hash must refuse it before reading.
        let err = hash_file(
            Path::new("/dev/zero"),
            Settings::new("x"),
            &StopSignal::never(),
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unreadable);
        assert!(err.reason().contains("device"), "{}", err.reason());
    }

    #[test]
    fn the_identity_changes_with_the_size_or_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        std::fs::write(&path, b"abc").unwrap();
        let (_, before) = hash_file(&path, Settings::new("x"), &StopSignal::never()).unwrap();
        assert_eq!(FileIdentity::of_path(&path).unwrap(), before);
        std::fs::write(&path, b"abcd").unwrap();
        assert_ne!(FileIdentity::of_path(&path).unwrap(), before);
    }

    #[test]
    fn the_first_schema_is_the_old_recipe() {
        // What builds before the schema version computed; their rows must miss now.
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"tempo-scale result cache 1\nfp\neval-cli ");
        hasher.update(env!("CARGO_PKG_VERSION").as_bytes());
        hasher.update(b"\n");
        hasher.update(&record::header());
        let old = Settings(*hasher.finalize().as_bytes());
        assert_eq!(Settings::with_schema(1, "fp"), old);
        assert_ne!(Settings::new("fp"), old);
    }
}
