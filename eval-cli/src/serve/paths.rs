//! Path confinement: which paths of a job request may be read. Paths are absolute or
//! relative to a root, canonicalised, and must stay inside a root; a link that leads out
//! (or to nothing) is refused with the same answer whether its target exists, and the
//! target is never named.

use std::path::{Component, Path, PathBuf};

use analyzer_core::batch::{self, Status};
use axum::http::StatusCode;

use super::http::Refusal;
use crate::record::AnalyzeRecord;

/// The files of a job's `paths` (walked and sorted as `analyze` does), and the rows of
/// inputs that could not be walked; refused when a path, or a link met in a walked folder,
/// leads outside the roots or to nothing. Whether the place a link leads to exists is
/// never told, nor where it is: the refusal names the link as found inside the root.
pub(super) fn walk(
    roots: &[PathBuf],
    paths: &[String],
) -> Result<(Vec<PathBuf>, Vec<AnalyzeRecord>), Refusal> {
    let confined: Vec<PathBuf> = paths
        .iter()
        .map(|p| confine(roots, p))
        .collect::<Result<_, _>>()?;
    // One walk: each link met is checked before it is followed, and the first that leads
    // out (or to nothing) refuses the job.
    let leads_in = |link: &Path| link.canonicalize().is_ok_and(|real| inside(roots, &real));
    let (files, walk_errors) =
        batch::collect_files_checked(&confined, batch::has_audio_extension, leads_in).map_err(
            |link| {
                Refusal::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "{} is a link that leads outside the roots or to nothing",
                        link.display()
                    ),
                )
            },
        )?;
    let walk_rows = walk_errors
        .iter()
        .map(|e| AnalyzeRecord::new(&e.path, Status::Error, None, Some(&e.reason)))
        .collect();
    Ok((files, walk_rows))
}

/// Whether a symbolic link lies on the way from `base` (excluded) down to `path`
/// (included).
pub(super) fn through_link(base: &Path, path: &Path) -> bool {
    path.ancestors()
        .take_while(|a| a.starts_with(base) && *a != base)
        .any(|a| a.symlink_metadata().is_ok_and(|m| m.is_symlink()))
}

pub(super) fn inside(roots: &[PathBuf], path: &Path) -> bool {
    roots.iter().any(|root| path.starts_with(root))
}

/// The canonical form of `raw` if it lies inside a root: absolute, or relative to the
/// first root that has it. No answer tells what exists outside the roots: `..` is refused
/// outright, and a path that leads out through a link gets the same answer whether the
/// place it leads to exists or not (and that place is never named).
pub(super) fn confine(roots: &[PathBuf], raw: &str) -> Result<PathBuf, Refusal> {
    let path = Path::new(raw);
    let outside = || {
        Refusal::new(
            StatusCode::FORBIDDEN,
            format!("path {raw:?} is outside the roots"),
        )
    };
    if raw.is_empty() {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "invalid job request: an empty path".to_string(),
        ));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            format!("path {raw:?} is outside the roots (`..` is not allowed)"),
        ));
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
        return Err(outside());
    }
    let mut astray = false;
    for (root, candidate) in &candidates {
        match candidate.canonicalize() {
            Ok(real) if inside(roots, &real) => return Ok(real),
            _ => astray |= through_link(root, candidate),
        }
    }
    if astray {
        return Err(outside());
    }
    Err(Refusal::new(
        StatusCode::NOT_FOUND,
        format!("path {raw:?}: no such file or folder under the roots"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_confined_to_the_roots() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap().join("root");
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::write(root.join("a/x.wav"), b"").unwrap();
        std::fs::write(dir.path().join("secret.wav"), b"").unwrap();
        let roots = [root.clone()];
        assert_eq!(confine(&roots, "a").ok(), Some(root.join("a")));
        assert_eq!(
            confine(&roots, root.join("a/x.wav").to_str().unwrap()).ok(),
            Some(root.join("a/x.wav"))
        );
        let status = |raw: &str| confine(&roots, raw).err().map(|r| r.status);
        assert_eq!(status("../secret.wav"), Some(StatusCode::FORBIDDEN));
        assert_eq!(status("a/../../secret.wav"), Some(StatusCode::FORBIDDEN));
        assert_eq!(
            status(dir.path().join("secret.wav").to_str().unwrap()),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            status("/nonexistent/elsewhere"),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(status("missing"), Some(StatusCode::NOT_FOUND));
        assert_eq!(status(""), Some(StatusCode::BAD_REQUEST));

        // A link out answers the same whether its target exists, and never names it.
        let message = |raw: &str| confine(&roots, raw).err().map(|r| (r.status, r.message));
        std::os::unix::fs::symlink(dir.path().join("secret.wav"), root.join("l1")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("none.wav"), root.join("l2")).unwrap();
        let (to_file, to_nothing) = (message("l1").unwrap(), message("l2").unwrap());
        assert_eq!(to_file.0, StatusCode::FORBIDDEN);
        assert_eq!(to_file.1.replace("l1", "l2"), to_nothing.1);
        assert!(!to_file.1.contains("secret"), "{}", to_file.1);
    }

    #[test]
    fn a_walked_link_out_is_named_as_found_whether_its_target_exists() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let root = base.join("root");
        std::fs::create_dir_all(root.join("lib/inner")).unwrap();
        std::fs::create_dir_all(base.join("outside")).unwrap();
        std::fs::write(base.join("outside/secret.wav"), b"").unwrap();
        let roots = [root.clone()];
        let link = root.join("lib/inner/x");
        let refusal = |target: &Path| {
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(target, &link).unwrap();
            let r = walk(&roots, &["lib".to_string()]).err().unwrap();
            (r.status, r.message)
        };
        let to_folder = refusal(&base.join("outside"));
        let to_file = refusal(&base.join("outside/secret.wav"));
        let to_nothing = refusal(&base.join("outside/none"));
        assert_eq!(to_folder.0, StatusCode::FORBIDDEN);
        assert_eq!(to_folder, to_nothing);
        assert_eq!(to_file, to_nothing);
        assert!(to_folder.1.contains(link.to_str().unwrap()));
        let outside = base.join("outside");
        assert!(
            !to_folder.1.contains(outside.to_str().unwrap()),
            "{}",
            to_folder.1
        );
        // A link that stays inside is followed.
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(root.join("lib"), root.join("lib2")).unwrap();
        assert!(walk(&roots, &["lib2".to_string()]).is_ok());
    }
}
