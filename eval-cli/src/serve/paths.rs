//! Path confinement of a job request ([`crate::confine`]) in HTTP terms, and the walk of its
//! folders, which refuses a link met inside that leads out.

use std::path::{Path, PathBuf};

use analyzer_core::batch::{self, Status};
use axum::http::StatusCode;

use super::http::Refusal;
use crate::confine::{Refused, inside};
use crate::record::AnalyzeRecord;

/// The files of a job's `paths` (walked and sorted as `analyze` does), and the rows of
/// inputs that could not be walked; refused when a path, or a link met in a walked folder,
/// leads outside the roots or to nothing. Whether the place a link leads to exists is
/// never told, nor where it is: the refusal names the link as found inside the root.
/// A folder that could not be opened for want of a descriptor (the workers hold them)
/// refuses the job with 503: it would have been a job of one `walk:` row, done, although
/// the folder reads a moment later.
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
        batch::collect_files_checked(&confined, batch::is_audio_name, leads_in).map_err(
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
    if let Some(short) = walk_errors.iter().find(|e| e.out_of_files) {
        return Err(Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{}: no file descriptor left to walk it (ulimit -n); try again",
                short.path.display()
            ),
        ));
    }
    let walk_rows = walk_errors
        .iter()
        .map(|e| AnalyzeRecord::new(&e.path, Status::Error, None, Some(&e.reason)))
        .collect();
    Ok((files, walk_rows))
}

/// The canonical form of `raw` if it lies inside a root ([`crate::confine::confine`]),
/// else the HTTP answer: 400 for an empty path, 404 for nothing there, 403 for the rest.
pub(super) fn confine(roots: &[PathBuf], raw: &str) -> Result<PathBuf, Refusal> {
    crate::confine::confine(roots, raw).map_err(|refused| {
        let status = match refused {
            Refused::Empty => StatusCode::BAD_REQUEST,
            Refused::NotFound(_) => StatusCode::NOT_FOUND,
            Refused::ParentDir(_) | Refused::Outside(_) => StatusCode::FORBIDDEN,
        };
        Refusal::new(status, refused.to_string())
    })
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

    /// The `path` cell a row gives is accepted back as a job's path, also for names that
    /// are not UTF-8 (`\xE9`) or hold backslashes: they were 404.
    #[cfg(unix)]
    #[test]
    fn a_rows_path_cell_is_accepted_back() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let roots = [root.clone()];
        for name in [&b"lat\xE9.wav"[..], b"back\\\\slash.wav", b"lit\\xE9.wav"] {
            let file = root.join(std::ffi::OsStr::from_bytes(name));
            std::fs::write(&file, b"").unwrap();
            let cell = crate::path_cell::path_cell(&file);
            assert_eq!(confine(&roots, &cell).ok(), Some(file.clone()), "{cell}");
        }
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
