//! Path confinement: which paths a request may name. Paths are absolute or relative to a
//! root, and where they really lead (canonicalised) must stay inside a root; a link that
//! leads out (or to nothing) is refused with the same answer whether its target exists, and
//! the target is never named. A path let in keeps the spelling the request gave it, so
//! that its rows are those `analyze` writes for that path. Shared by the front ends that
//! take paths from others (`serve`, `consume`).

use std::path::{Component, Path, PathBuf};

use serde::de::DeserializeOwned;

/// Largest JSON request naming paths that a front end reads (`serve`'s job, `consume`'s
/// request): room for tens of thousands of paths, not for a body meant to exhaust memory.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// Reads a JSON request (`serve`'s job, `consume`'s request) into `T`, or says why not,
/// naming the field at fault: `min_bpm: invalid type: string "fast", expected f64 at line
/// 1 column 31` (serde's own message named the line and column alone).
pub fn parse_request<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let mut json = serde_json::Deserializer::from_slice(body);
    let request = serde_path_to_error::deserialize(&mut json).map_err(|e| {
        // `?` is a place serde_path_to_error could not name (the text ended, say).
        match e.path().to_string().as_str() {
            field if field == "." || field.contains('?') => e.inner().to_string(),
            field => format!("{field}: {}", e.inner()),
        }
    })?;
    // Bytes after the object (`{..} x`) are an error, as serde_json::from_slice has it.
    json.end().map_err(|e| e.to_string())?;
    Ok(request)
}

/// Characters of a requested path that a message quotes; the rest is counted, not copied.
const QUOTED_PATH_CHARS: usize = 200;

/// Why a requested path is refused; the message names the path as requested (its first
/// [`QUOTED_PATH_CHARS`] characters: [`quoted_path`]), never where a link leads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// An empty path.
    #[error("invalid request: an empty path")]
    Empty,
    /// A path with a `..` component, refused outright.
    #[error("path {} is outside the roots (`..` is not allowed)", quoted_path(.0))]
    ParentDir(String),
    /// A path outside every root, or leading out through a link.
    #[error("path {} is outside the roots", quoted_path(.0))]
    Outside(String),
    /// Nothing of that name under the roots.
    #[error("path {}: no such file or folder under the roots", quoted_path(.0))]
    NotFound(String),
}

/// `raw` quoted for a message, cut to its first [`QUOTED_PATH_CHARS`] characters with its
/// whole size said (`"/a/b"… (5000000 bytes)`): a request may name a path of megabytes,
/// and every message that quotes it (an answer, a log line, a dead letter's header) would
/// carry it whole.
pub fn quoted_path(raw: &str) -> String {
    match raw.char_indices().nth(QUOTED_PATH_CHARS) {
        None => format!("{raw:?}"),
        Some((end, _)) => format!("{:?}… ({} bytes)", &raw[..end], raw.len()),
    }
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

/// `raw` as the request spelled it (absolute, or joined to the first root that has it) if
/// the place it leads to lies inside a root. The spelling is kept, links and `.` parts
/// included, because it is what the rows name: `analyze` on the same path writes the same
/// bytes, and two names of one file (a link beside its target) are two rows there too.
/// No answer tells what exists outside the roots: `..` is refused outright, and a path
/// that leads out through a link gets the same answer whether the place it leads to
/// exists or not (and that place is never named).
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
    for (root, candidate) in candidates {
        match candidate.canonicalize() {
            Ok(real) if inside(roots, &real) => return Ok(candidate),
            _ => astray |= through_link(root, &candidate),
        }
    }
    if astray {
        return Err(Refused::Outside(raw.to_string()));
    }
    Err(Refused::NotFound(raw.to_string()))
}

#[cfg(test)]
mod tests {
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Request {
        paths: Vec<String>,
        min_bpm: Option<f64>,
    }

    #[test]
    fn a_bad_request_names_the_field_at_fault() {
        let error = |body: &str| super::parse_request::<Request>(body.as_bytes()).unwrap_err();
        assert!(
            error(r#"{"paths": ["a"], "min_bpm": "fast"}"#)
                .starts_with("min_bpm: invalid type: string \"fast\", expected f64"),
            "{}",
            error(r#"{"paths": ["a"], "min_bpm": "fast"}"#)
        );
        assert!(error(r#"{"paths": ["a", 3]}"#).starts_with("paths[1]: invalid type"));
        assert!(error(r#"{"paths": ["a"], "x": 1}"#).starts_with("x: unknown field `x`"));
        assert!(error(r#"{"paths": ["a"],"#).starts_with("EOF while parsing"));
        assert!(error(r#"{"paths": ["a"]} x"#).starts_with("trailing characters"));
        let read: Request = super::parse_request(br#"{"paths": ["a"]}"#).unwrap();
        assert_eq!(read.paths, ["a"]);
    }

    use super::*;

    /// A path through a link that stays inside is let in as the request spelled it (joined
    /// to the root when relative): rows name it so, as `analyze` does. A link out is still
    /// refused by where it leads.
    #[cfg(unix)]
    #[test]
    fn a_link_inside_keeps_its_name_and_a_link_out_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let root = base.join("root");
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::fs::write(root.join("real/a.wav"), b"").unwrap();
        std::fs::write(base.join("secret.wav"), b"").unwrap();
        std::os::unix::fs::symlink("real", root.join("alias")).unwrap();
        std::os::unix::fs::symlink("real/a.wav", root.join("a_link.wav")).unwrap();
        std::os::unix::fs::symlink(base.join("secret.wav"), root.join("out.wav")).unwrap();
        let roots = [root.clone()];
        let alias = root.join("alias");
        assert_eq!(confine(&roots, "alias"), Ok(alias.clone()));
        assert_eq!(confine(&roots, "alias/a.wav"), Ok(alias.join("a.wav")));
        let dotted = root.join("./a_link.wav");
        assert_eq!(
            confine(&roots, dotted.to_str().unwrap()),
            Ok(dotted.clone())
        );
        assert_eq!(
            confine(&roots, "out.wav"),
            Err(Refused::Outside("out.wav".to_string()))
        );
    }

    /// A path of megabytes is quoted by its first characters and its size, never whole; a
    /// cut never splits a character.
    #[test]
    fn a_long_path_is_quoted_cut_with_its_size() {
        assert_eq!(quoted_path("albums/x.wav"), "\"albums/x.wav\"");
        let just_fits = "a".repeat(QUOTED_PATH_CHARS);
        assert_eq!(quoted_path(&just_fits), format!("{just_fits:?}"));
        let huge = "é".repeat(5_000_000);
        let quoted = quoted_path(&huge);
        let head = "é".repeat(QUOTED_PATH_CHARS);
        assert_eq!(quoted, format!("\"{head}\"… (10000000 bytes)"));
        let refused = Refused::Outside(huge).to_string();
        assert!(refused.len() < 1000, "{} bytes", refused.len());
        assert!(
            refused.ends_with("(10000000 bytes) is outside the roots"),
            "{refused}"
        );
    }
}
