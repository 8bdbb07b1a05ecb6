//! The built-in synthetic set's cache: generated on first use under the system temp dir,
//! and checked before every use.
//!
//! Each user has a folder of their own (`tempo-scale-synth-cache-UID`), which must belong to
//! that user and be writable by no one else: one folder shared by all let the first user
//! lock every other out, and let any local user plant a set that `evaluate`, `compare` and
//! CI's `check` gate then scored. Each set holds `checksums.txt`, the size and BLAKE3 hash
//! of every file, written last; a set that no longer matches it (a temp cleaner removed a
//! file, a file was edited or cut short) is generated again, never scored: its missing files
//! were failed rows and an edited truth was scored as if it were the set's.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::{SynthParams, write_synth};
use crate::input::read_regular_if_any;

/// The file of a cached set that lists its other files' sizes and hashes.
const CHECKSUMS: &str = "checksums.txt";

/// Where the synthetic set for `params` is cached: a folder of this user's cache, named by
/// the parameters and the generator version (v2: the manifest has `key`).
fn synth_cache_dir(root: &Path, params: SynthParams) -> PathBuf {
    root.join(format!(
        "synth-v2-n{}-s{}-k{}",
        params.count, params.seconds, params.seed
    ))
}

/// Generates the synthetic set into its cache folder unless a set that matches its
/// checksums is already there, and returns the folder. Generation goes to a private
/// folder; a new set is renamed into place, so concurrent runs never see half a dataset.
/// An altered set is mended file by file ([`mend`]), never removed: another run may be
/// scoring it, and the files generated again are the same bytes.
pub fn synth_cache(params: SynthParams) -> anyhow::Result<PathBuf> {
    let root = own_cache_root()?;
    let dir = synth_cache_dir(&root, params);
    let altered = match check(&dir) {
        Ok(()) => return Ok(dir),
        Err(Damage::Absent) => false,
        Err(Damage::Altered(why)) => {
            eprintln!(
                "eval-cli: the cached synthetic set {} was altered ({why}): generating it again",
                dir.display()
            );
            true
        }
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = root.join(format!(".tmp-{}-{nanos}", std::process::id()));
    let written = write_synth(&tmp, params).and_then(|_| write_checksums(&tmp));
    if let Err(e) = written {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let placed = if altered || dir.exists() {
        mend(&tmp, &dir)
    } else {
        // Another run may have placed the set meanwhile: then ours is not needed.
        let _ = fs::rename(&tmp, &dir);
        Ok(())
    };
    let _ = fs::remove_dir_all(&tmp);
    placed?;
    match check(&dir) {
        Ok(()) => Ok(dir),
        Err(Damage::Absent) => bail!("synthetic dataset cache {} is incomplete", dir.display()),
        Err(Damage::Altered(why)) => {
            bail!(
                "synthetic dataset cache {} does not match its checksums ({why})",
                dir.display()
            )
        }
    }
}

/// Puts the fresh set in `fresh` in place of the altered one in `dir`: each file renamed
/// over its namesake (a reader opens the old file or the new one, never none), the
/// checksums last, and whatever else is in `dir` (not the set's) removed.
fn mend(fresh: &Path, dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut names =
        regular_files(fresh).with_context(|| format!("cannot read {}", fresh.display()))?;
    names.retain(|name| name != CHECKSUMS);
    names.push(CHECKSUMS.to_string());
    for name in &names {
        fs::rename(fresh.join(name), dir.join(name))
            .with_context(|| format!("cannot put {} in place", dir.join(name).display()))?;
    }
    for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        let name = entry.file_name();
        if !names.iter().any(|n| name.to_str() == Some(n.as_str())) {
            let path = entry.path();
            let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            removed.with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    Ok(())
}

/// What is wrong with a cached set.
#[derive(Debug)]
enum Damage {
    /// No set (or no checksums: a set is complete once they are written).
    Absent,
    /// A file is missing, extra or differs from its checksum.
    Altered(String),
}

/// Whether the set in `dir` matches its checksums: they list exactly the regular files
/// the folder holds (each a plain name, once), and each file has its size and hash. A
/// name that is a link, a pipe or a device, or that points out of the folder, is a
/// mismatch, never opened.
fn check(dir: &Path) -> Result<(), Damage> {
    let list = dir.join(CHECKSUMS);
    let text = match read_regular_if_any(&list, crate::input::MAX_SMALL_BYTES, "") {
        Ok(Some(text)) => text,
        Ok(None) => return Err(Damage::Absent),
        Err(e) => return Err(Damage::Altered(format!("{e:#}"))),
    };
    let text =
        String::from_utf8(text).map_err(|_| Damage::Altered(format!("{CHECKSUMS} is not text")))?;
    let mut listed: Vec<(&str, &str, &str)> = Vec::new();
    for line in text.lines() {
        let mut cells = line.splitn(3, ' ');
        let (Some(hash), Some(size), Some(name)) = (cells.next(), cells.next(), cells.next())
        else {
            return Err(Damage::Altered(format!("{CHECKSUMS} has a line {line:?}")));
        };
        listed.push((name, size, hash));
    }
    listed.sort_by_key(|&(name, ..)| name);
    let mut held = regular_files(dir).map_err(|e| Damage::Altered(e.to_string()))?;
    held.retain(|name| name != CHECKSUMS);
    held.sort();
    let names: Vec<&str> = listed.iter().map(|&(name, ..)| name).collect();
    if names != held || !names.contains(&"manifest.csv") {
        return Err(Damage::Altered(format!(
            "{CHECKSUMS} does not list exactly the files of the set"
        )));
    }
    for (name, size, hash) in listed {
        let (found_hash, found_size) =
            fingerprint(&dir.join(name)).map_err(|e| Damage::Altered(format!("{name}: {e}")))?;
        if found_size.to_string() != size || found_hash != hash {
            return Err(Damage::Altered(format!("{name} differs from its checksum")));
        }
    }
    Ok(())
}

/// The names of the regular files (not links, pipes or folders) directly in `dir`; a name
/// that is not UTF-8 is kept in its lossy form, which no checksum line matches.
fn regular_files(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    Ok(names)
}

/// Writes `checksums.txt` for every file in `dir`: `HASH SIZE NAME` a line, sorted by name.
fn write_checksums(dir: &Path) -> anyhow::Result<()> {
    let mut names = regular_files(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    names.sort();
    let mut text = String::new();
    for name in &names {
        let (hash, size) = fingerprint(&dir.join(name))
            .with_context(|| format!("cannot read {}", dir.join(name).display()))?;
        text.push_str(&format!("{hash} {size} {name}\n"));
    }
    let path = dir.join(CHECKSUMS);
    let mut file =
        fs::File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The BLAKE3 hash (hex) and the size of the file at `path`.
fn fingerprint(path: &Path) -> std::io::Result<(String, u64)> {
    let mut hasher = blake3::Hasher::new();
    let size = std::io::copy(&mut fs::File::open(path)?, &mut hasher)?;
    Ok((hasher.finalize().to_hex().to_string(), size))
}

/// This user's cache folder, made if need be; refused where it belongs to someone else or
/// others may write it.
#[cfg(unix)]
fn own_cache_root() -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let tmp = crate::host::temp_folder();
    // The owner of a file this process makes is the user it runs as.
    let uid = tempfile::tempfile_in(&tmp)
        .and_then(|f| f.metadata())
        .with_context(|| {
            format!(
                "cannot write to the temp folder {} (set TMPDIR)",
                tmp.display()
            )
        })?
        .uid();
    let root = tmp.join(format!("tempo-scale-synth-cache-{uid}"));
    match fs::DirBuilder::new().mode(0o700).create(&root) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", root.display())),
    }
    let meta =
        fs::symlink_metadata(&root).with_context(|| format!("cannot read {}", root.display()))?;
    let refuse = |why: &str| {
        anyhow::anyhow!(
            "the synthetic set's cache {} {why}: a set someone else can write is not scored; \
             remove it, or set TMPDIR to a folder of your own",
            root.display()
        )
    };
    if !meta.is_dir() {
        return Err(refuse("is not a folder"));
    }
    if meta.uid() != uid {
        return Err(refuse(&format!(
            "belongs to another user (uid {})",
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(refuse(&format!(
            "may be written by others (mode {:o})",
            meta.mode() & 0o777
        )));
    }
    Ok(root)
}

/// The cache folder, where there are no file owners to check.
#[cfg(not(unix))]
fn own_cache_root() -> anyhow::Result<PathBuf> {
    let root = crate::host::temp_folder().join("tempo-scale-synth-cache");
    fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A set whose files all match its checksums passes; one with a file missing, cut
    /// short or edited (the same size) is altered; one without checksums is absent.
    #[test]
    fn a_set_is_checked_against_its_checksums() {
        let dir = tempfile::tempdir().unwrap();
        let set = dir.path();
        fs::write(set.join("manifest.csv"), "file,bpm\na.wav,120\n").unwrap();
        fs::write(set.join("a.wav"), vec![7u8; 5000]).unwrap();
        assert!(matches!(check(set), Err(Damage::Absent)));
        write_checksums(set).unwrap();
        check(set).unwrap();
        fs::write(set.join("manifest.csv"), "file,bpm\na.wav,140\n").unwrap();
        let Err(Damage::Altered(why)) = check(set) else {
            panic!("an edited truth passed")
        };
        assert!(why.contains("manifest.csv differs"), "{why}");
        fs::write(set.join("manifest.csv"), "file,bpm\na.wav,120\n").unwrap();
        check(set).unwrap();
        fs::write(set.join("a.wav"), vec![7u8; 1000]).unwrap();
        assert!(matches!(check(set), Err(Damage::Altered(_))));
        fs::remove_file(set.join("a.wav")).unwrap();
        let Err(Damage::Altered(why)) = check(set) else {
            panic!("a missing file passed")
        };
        assert!(why.contains("does not list exactly"), "{why}");
    }

    /// The list must name exactly the set's regular files, once each: a line naming a
    /// device (hashed for ever), a pipe in the set, a name twice or the manifest left out
    /// are mismatches, and nothing is opened but the set's own files. Mending puts the
    /// fresh files in place and removes the rest, without removing the folder.
    #[cfg(unix)]
    #[test]
    fn the_list_names_exactly_the_sets_files_and_mending_keeps_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let set = dir.path().join("set");
        let fresh = dir.path().join("fresh");
        for folder in [&set, &fresh] {
            fs::create_dir(folder).unwrap();
            fs::write(folder.join("manifest.csv"), "file,bpm\na.wav,120\n").unwrap();
            fs::write(folder.join("a.wav"), vec![7u8; 5000]).unwrap();
            write_checksums(folder).unwrap();
        }
        let list = set.join(CHECKSUMS);
        let good = fs::read_to_string(&list).unwrap();
        let altered = |text: &str| {
            fs::write(&list, text).unwrap();
            matches!(check(&set), Err(Damage::Altered(_)))
        };
        assert!(altered(&format!("{good}abc 0 /dev/zero\n")));
        assert!(altered(&format!("{good}abc 0 ../fresh/a.wav\n")));
        let twice = good.lines().last().unwrap();
        assert!(altered(&format!("{good}{twice}\n")));
        let no_manifest: String = good
            .lines()
            .filter(|l| !l.ends_with("manifest.csv"))
            .map(|l| format!("{l}\n"))
            .collect();
        fs::remove_file(set.join("manifest.csv")).unwrap();
        assert!(altered(&no_manifest));
        fs::write(&list, &good).unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(set.join("pipe"))
            .status()
            .unwrap();
        assert!(status.success());
        assert!(altered(&format!("{good}abc 0 pipe\n")));
        let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap());
        let folder = inode(&set);
        mend(&fresh, &set).unwrap();
        check(&set).unwrap();
        assert_eq!(inode(&set), folder, "the folder itself stays");
        assert!(!set.join("pipe").exists());
    }
}
