//! Which folders `watch` follows: every folder under the ones given that the kernel lets it
//! watch. One folder it may not read (a `lost+found`, another user's folder) must not stop
//! the whole library from being watched: notify's recursive watch gives up at the first
//! such folder, so where it does, each subfolder is watched on its own, down to the ones
//! that cannot be, which are left out and named.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use notify::ErrorKind;

/// A folder under a watched one that cannot be watched (no permission): files added under
/// it are not seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Unwatched {
    /// The folder, under the folder as given.
    pub path: PathBuf,
    /// Why, as notify says it.
    pub reason: String,
}

/// Watches `dir` and every folder under it with `watch` (notify's `watch(path, Recursive)`),
/// leaving out the folders under it that cannot be watched; those are returned, in sorted
/// order. An error when `dir` itself cannot be watched, or when the kernel's limit on
/// watches is reached (then the library cannot be followed whole, and saying so is better
/// than following part of it).
pub(super) fn watch_tree(
    mut watch: impl FnMut(&Path) -> Result<(), notify::Error>,
    dir: &Path,
) -> Result<Vec<Unwatched>, notify::Error> {
    let mut unwatched = Vec::new();
    let mut visited = HashSet::new();
    watch_folder(&mut watch, dir, &mut visited, &mut unwatched)?;
    Ok(unwatched)
}

/// Watches `folder` recursively; when a folder under it cannot be watched, watches each
/// of its subfolders the same way (notify stops at the first failure, leaving the rest
/// unwatched). An error when `folder` itself cannot be watched.
fn watch_folder(
    watch: &mut impl FnMut(&Path) -> Result<(), notify::Error>,
    folder: &Path,
    visited: &mut HashSet<(u64, u64)>,
    unwatched: &mut Vec<Unwatched>,
) -> Result<(), notify::Error> {
    // Links are followed (as the walks follow them): a link back up is watched once.
    if let Some(id) = super::folder_identity(folder)
        && !visited.insert(id)
    {
        return Ok(());
    }
    let error = match watch(folder) {
        Ok(()) => return Ok(()),
        Err(error) => error,
    };
    if matches!(error.kind, ErrorKind::MaxFilesWatch) || is_about(&error, folder) {
        return Err(error);
    }
    for sub in subfolders(folder) {
        match watch_folder(watch, &sub, visited, unwatched) {
            Ok(()) => {}
            Err(error) if matches!(error.kind, ErrorKind::MaxFilesWatch) => return Err(error),
            Err(error) => unwatched.push(Unwatched {
                path: sub,
                reason: reason(&error),
            }),
        }
    }
    Ok(())
}

/// Whether `error` is about `folder` itself (notify names the folder it failed on, made
/// absolute as its `watch` makes it), or names nothing.
fn is_about(error: &notify::Error, folder: &Path) -> bool {
    let absolute = std::path::absolute(folder).unwrap_or_else(|_| folder.to_path_buf());
    error.paths.is_empty() || error.paths.contains(&absolute)
}

/// The folders in `folder` (links to folders included), sorted by name.
fn subfolders(folder: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_dir())
        .collect();
    found.sort();
    found
}

/// notify's error without the paths it appends (the row or warning names the folder).
fn reason(error: &notify::Error) -> String {
    match &error.kind {
        ErrorKind::Io(io) => io.to_string(),
        ErrorKind::Generic(text) => text.clone(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A watcher that refuses every folder named `locked` (as the kernel refuses a folder
    /// without read permission) and otherwise records what it was asked, failing a
    /// recursive watch at the first `locked` folder under it, as notify does.
    struct Fake {
        watched: Vec<PathBuf>,
    }

    impl Fake {
        fn watch(&mut self, folder: &Path) -> Result<(), notify::Error> {
            let refused = |p: &Path| p.file_name().is_some_and(|n| n == "locked");
            for entry in walkdir::WalkDir::new(folder)
                .follow_links(true)
                .sort_by_file_name()
            {
                let Ok(entry) = entry else { continue };
                if !entry.file_type().is_dir() {
                    continue;
                }
                if refused(entry.path()) {
                    let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
                    return Err(notify::Error::io(denied)
                        .add_path(std::path::absolute(entry.path()).unwrap()));
                }
                self.watched.push(entry.into_path());
            }
            Ok(())
        }
    }

    #[test]
    fn a_folder_that_cannot_be_watched_leaves_the_rest_watched() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("lib");
        for sub in ["a/locked/in", "a/b", "c", "locked", "z"] {
            std::fs::create_dir_all(lib.join(sub)).unwrap();
        }
        let mut fake = Fake {
            watched: Vec::new(),
        };
        let unwatched = watch_tree(|f| fake.watch(f), &lib).unwrap();
        assert_eq!(
            unwatched.iter().map(|u| u.path.clone()).collect::<Vec<_>>(),
            [lib.join("a/locked"), lib.join("locked")]
        );
        assert!(
            unwatched[0].reason.contains("permission denied"),
            "{unwatched:?}"
        );
        let mut watched = fake.watched;
        watched.sort();
        watched.dedup();
        let want: Vec<PathBuf> = ["", "a", "a/b", "c", "z"]
            .iter()
            .map(|s| {
                if s.is_empty() {
                    lib.clone()
                } else {
                    lib.join(s)
                }
            })
            .collect();
        assert_eq!(watched, want);
        // Everything watchable: one call, as before.
        let mut fake = Fake {
            watched: Vec::new(),
        };
        let unwatched = watch_tree(|f| fake.watch(f), &lib.join("z")).unwrap();
        assert!(unwatched.is_empty() && fake.watched == [lib.join("z")]);
    }

    #[test]
    fn a_folder_given_that_cannot_be_watched_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let locked = dir.path().join("locked");
        std::fs::create_dir_all(&locked).unwrap();
        let mut fake = Fake {
            watched: Vec::new(),
        };
        assert!(watch_tree(|f| fake.watch(f), &locked).is_err());
    }

    /// The kernel's limit on watches reached under the folder: an error, not a library
    /// followed in part.
    #[test]
    fn the_watch_limit_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        let result = watch_tree(
            |_| Err(notify::Error::new(ErrorKind::MaxFilesWatch).add_path(dir.path().join("a"))),
            dir.path(),
        );
        assert!(result.is_err());
    }

    /// A link back up is watched once, not followed forever.
    #[cfg(unix)]
    #[test]
    fn a_link_loop_is_watched_once() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("lib");
        std::fs::create_dir_all(lib.join("locked")).unwrap();
        std::os::unix::fs::symlink(&lib, lib.join("up")).unwrap();
        let mut calls = 0;
        let unwatched = watch_tree(
            |f| {
                calls += 1;
                if f == lib {
                    Err(notify::Error::generic("under").add_path(lib.join("locked")))
                } else {
                    Err(notify::Error::generic("no").add_path(std::path::absolute(f).unwrap()))
                }
            },
            &lib,
        )
        .unwrap();
        assert_eq!(calls, 2, "{unwatched:?}");
        assert_eq!(unwatched.len(), 1);
    }
}
