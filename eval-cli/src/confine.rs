//! Path confinement: which paths a request may name. Paths are absolute or relative to a
//! root, canonicalised, and must stay inside a root; a link that leads out (or to nothing)
//! is refused with the same answer whether its target exists, and the target is never
//! named. Shared by the front ends that take paths from others (`serve`, `consume`).

use std::path::{Component, Path, PathBuf};

/// Why a requested path is refused; the message names the path as requested, never where
/// a link leads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// An empty path.
    #[error("invalid request: an empty path")]
    Empty,
    /// A path with a `..` component, refused outright.
    #[error("path {0:?} is outside the roots (`..` is not allowed)")]
    ParentDir(String),
    /// A path outside every root, or leading out through a link.
    #[error("path {0:?} is outside the roots")]
    Outside(String),
    /// Nothing of that name under the roots.
    #[error("path {0:?}: no such file or folder under the roots")]
    NotFound(String),
}

/// The `--root` folders, canonical (what [`confine`] compares against); an error names a
/// root that is missing or not a folder.
pub fn canonical_roots(roots: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    roots
        .iter()
        .map(|root| {
            let canonical = root
                .canonicalize()
                .map_err(|e| anyhow::anyhow!("--root {}: {e}", root.display()))?;
            if !canonical.is_dir() {
                anyhow::bail!("--root {} is not a folder", root.display());
            }
            Ok(canonical)
        })
        .collect()
}

/// Whether a symbolic link lies on the way from `base` (excluded) down to `path`
/// (included).
pub fn through_link(base: &Path, path: &Path) -> bool {
    path.ancestors()
        .take_while(|a| a.starts_with(base) && *a != base)
        .any(|a| a.symlink_metadata().is_ok_and(|m| m.is_symlink()))
}

/// Whether `path` (canonical) lies under one of `roots` (canonical).
pub fn inside(roots: &[PathBuf], path: &Path) -> bool {
    roots.iter().any(|root| path.starts_with(root))
}

/// The canonical form of `raw` if it lies inside a root: absolute, or relative to the
/// first root that has it. No answer tells what exists outside the roots: `..` is refused
/// outright, and a path that leads out through a link gets the same answer whether the
/// place it leads to exists or not (and that place is never named).
///
/// `raw` is read as a row's `path` cell ([`crate::path_cell`]: `\xNN` a byte that is not
/// UTF-8, `\\` a backslash where one could start an escape), so the path a row gives can be
/// sent back as it is; JSON text cannot carry such a name otherwise.
pub fn confine(roots: &[PathBuf], raw: &str) -> Result<PathBuf, Refused> {
    let decoded = crate::path_cell::parse_path_cell(raw);
    let path = decoded.as_path();
    if raw.is_empty() {
        return Err(Refused::Empty);
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(Refused::ParentDir(raw.to_string()));
    }
    let candidates: Vec<(&PathBuf, PathBuf)> = if path.is_absolute() {
        roots
            .iter()
            .filter(|root| path.starts_with(root))
            .map(|root| (root, path.to_path_buf()))
            .collect()
    } else {
        roots.iter().map(|root| (root, root.join(path))).collect()
    };
    if candidates.is_empty() {
        return Err(Refused::Outside(raw.to_string()));
    }
    let mut astray = false;
    for (root, candidate) in &candidates {
        match candidate.canonicalize() {
            Ok(real) if inside(roots, &real) => return Ok(real),
            _ => astray |= through_link(root, candidate),
        }
    }
    if astray {
        return Err(Refused::Outside(raw.to_string()));
    }
    Err(Refused::NotFound(raw.to_string()))
}
