//! Which files a batch covers: explicit files as given, folders walked recursively.
//!
//! One walker for every caller (a batch of audio files, a dataset folder with its
//! annotations). It follows symbolic links (a library is often a tree of links) with
//! walkdir's loop detection, so a link back to an ancestor is reported instead of walked
//! forever. Entries are sorted by file name at every level, so the same tree always gives
//! the same list, which is what makes output identical from run to run.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::error::ErrorKind;

/// Extensions (lowercase, without the dot) of the files a folder walk picks up as audio.
///
/// Audio formats the decoder cannot read (Opus, AIFF, CAF, Matroska audio, WebM, WavPack,
/// Monkey's Audio, Wave64, WMA, MPEG layer II, AC-3, DTS, Speex, AMR) are listed too, so that such files show up as rows naming
/// their format instead of vanishing silently. `.mkv` is not: it is mostly video.
pub const AUDIO_EXTENSIONS: &[&str] = &[
    "wav", "wave", "mp3", "flac", "ogg", "oga", "opus", "m4a", "mp4", "aac", "aif", "aiff", "aifc",
    "caf", "mka", "webm", "wv", "ape", "w64", "wma", "m4b", "mp2", "ac3", "eac3", "dts", "spx",
    "amr",
];

/// A folder or link that a walk could not read (permission, a link back to an ancestor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkError {
    /// What could not be read.
    pub path: PathBuf,
    /// Why, as `walk: KIND: why` in the style of the analyzer's reasons.
    pub reason: String,
    /// Whether the folder could not be opened for want of a file descriptor (EMFILE,
    /// ENFILE): a state of the run, not of the folder, which a caller may walk again.
    pub out_of_files: bool,
}

/// Whether a folder walk takes `path` for audio: it has one of [`AUDIO_EXTENSIONS`], in
/// any case, and is not a macOS AppleDouble file (`._song.wav`, the metadata a Mac leaves
/// beside each file on a foreign disk, which made every copied library fail a row per song).
pub fn is_audio_name(path: &Path) -> bool {
    !is_apple_double(path)
        && path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| AUDIO_EXTENSIONS.iter().any(|a| a.eq_ignore_ascii_case(e)))
}

/// Whether `path` names a macOS AppleDouble file (`._NAME`): the metadata a Mac writes
/// beside every file on a foreign disk, never audio nor an annotation.
pub fn is_apple_double(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|name| name.as_encoded_bytes().starts_with(b"._"))
}

/// The audio files named by `paths` ([`collect_files`] keeping [`is_audio_name`]),
/// and what could not be walked.
pub fn collect_audio_files(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<WalkError>) {
    collect_files(paths, is_audio_name)
}

/// The files named by `paths`, and what could not be walked.
///
/// A path that is not a folder (following links) is taken as a file whatever its name,
/// even if it does not exist: analysing it then reports why. Folders are walked
/// recursively, depth first, entries sorted by file name (byte order on Unix), keeping
/// every entry that is not a folder and for which `keep` is true; a folder named `x.mp3`
/// is walked like any other. A named pipe, socket or device with an audio name is kept
/// too, so that analysing it says what it is (at once, without opening it for reading:
/// [`crate::decode::open_regular`]) instead of its being passed over in silence. So is a
/// symbolic link to nothing: it is kept or passed over by its name like a file, and kept in
/// its sorted place. A path met twice (`./a.wav` beside `a.wav` too) is kept once, as
/// first spelled. The errors are each folder that could not be read (no permission) or
/// link that leads back to an ancestor, in the order met.
pub fn collect_files(
    paths: &[PathBuf],
    keep: impl Fn(&Path) -> bool,
) -> (Vec<PathBuf>, Vec<WalkError>) {
    match collect_files_checked(paths, keep, |_| true) {
        Ok(found) => found,
        Err(refused) => unreachable!(
            "every link is allowed, yet {} was refused",
            refused.display()
        ),
    }
}

/// [`collect_files`], asking `link_allowed` about every symbolic link met inside a folder
/// (one that leads nowhere included) before it is followed: the walk stops at the first one
/// refused and returns it, so that a caller confining reads to some folders (a service's
/// roots) walks the tree once and reads nothing beyond such a link.
pub fn collect_files_checked(
    paths: &[PathBuf],
    keep: impl Fn(&Path) -> bool,
    link_allowed: impl Fn(&Path) -> bool,
) -> Result<(Vec<PathBuf>, Vec<WalkError>), PathBuf> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    let mut walked = HashSet::new();
    let mut failed = HashSet::new();
    for root in paths {
        let is_dir = std::fs::metadata(root).is_ok_and(|m| m.is_dir());
        if !is_dir {
            if seen.insert(spelled_alike(root)) {
                files.push(root.clone());
            }
            continue;
        }
        // A folder named again is not walked again: it would find only files already
        // kept (a request naming one folder 690,000 times walked it as often: 44 s).
        if !walked.insert(spelled_alike(root)) {
            continue;
        }
        let mut walk = walkdir::WalkDir::new(root)
            .follow_links(true)
            .sort_by_file_name()
            .into_iter();
        // walkdir knows a loop only by the folders of this walk: a link to the root's
        // parent climbed out of it and walked the root again as a plain folder (a file
        // under `lib/album` had two rows with `lib/album/up -> ..`, and the files beside
        // the album rows of their own).
        let root_real = root.canonicalize().ok();
        while let Some(entry) = walk.next() {
            match entry {
                Ok(entry) if entry.path_is_symlink() && !link_allowed(entry.path()) => {
                    return Err(entry.into_path());
                }
                Ok(entry)
                    if entry.depth() > 0
                        && entry.path_is_symlink()
                        && entry.file_type().is_dir() =>
                {
                    if let Some(up) = levels_above(root_real.as_deref(), entry.path()) {
                        walk.skip_current_dir();
                        // Spelled from the root as given, as walkdir spells the ancestors
                        // it knows: the row does not depend on where the library is mounted.
                        let ancestor = (0..up).fold(root.clone(), |p, _| p.join(".."));
                        if failed.insert(spelled_alike(entry.path())) {
                            errors.push(WalkError {
                                path: entry.into_path(),
                                reason: loop_reason(&ancestor),
                                out_of_files: false,
                            });
                        }
                    }
                    // Otherwise a folder like any other: nothing in it is a file to keep.
                }
                Ok(entry) => {
                    if !entry.file_type().is_dir()
                        && keep(entry.path())
                        && seen.insert(spelled_alike(entry.path()))
                    {
                        files.push(entry.into_path());
                    }
                }
                Err(err) => {
                    let path = err.path().unwrap_or(root);
                    if is_dangling_link(path) {
                        if !link_allowed(path) {
                            return Err(path.to_path_buf());
                        }
                        // A link to nothing is a name like any other: passed over unless
                        // `keep` takes it, and then listed in its sorted place, so that
                        // analysing it says why (`open: unreadable: No such file`).
                        if keep(path) && seen.insert(spelled_alike(path)) {
                            files.push(path.to_path_buf());
                        }
                        continue;
                    }
                    // One row for a folder or link met again from another root.
                    if failed.insert(spelled_alike(path)) {
                        errors.push(WalkError {
                            path: path.to_path_buf(),
                            reason: walk_reason(&err),
                            out_of_files: err.io_error().is_some_and(crate::error::is_out_of_files),
                        });
                    }
                }
            }
        }
    }
    Ok((files, errors))
}

/// How many folders above the walk's root (real path `root`) the folder link `link`
/// leads, when it leads to the root (0) or above it: following it would walk the root again
/// (`watch` asks the same of the links in an event's path).
pub fn levels_above(root: Option<&Path>, link: &Path) -> Option<usize> {
    let target = link.canonicalize().ok()?;
    let root = root?;
    root.starts_with(&target)
        .then(|| root.components().count() - target.components().count())
}

/// The reason of a walk error for a link back to `ancestor`.
pub fn loop_reason(ancestor: &Path) -> String {
    format!(
        "walk: loop: link points back to its ancestor {}",
        ancestor.display()
    )
}

/// Whether `path` is a symbolic link to nothing.
fn is_dangling_link(path: &Path) -> bool {
    path.symlink_metadata().is_ok_and(|m| m.is_symlink()) && path.metadata().is_err()
}

/// `STAGE: KIND: why` for a walk error, in the style of the analyzer's reasons.
fn walk_reason(err: &walkdir::Error) -> String {
    if let Some(ancestor) = err.loop_ancestor() {
        loop_reason(ancestor)
    } else if let Some(io) = err.io_error() {
        format!("walk: {}: {io}", ErrorKind::Unreadable)
    } else {
        format!("walk: {}: {err}", ErrorKind::Unreadable)
    }
}

/// `path` without its `.` parts, so that `./a.wav` and `a.wav` (or `lib` and `./lib`
/// given together) are met once: the first spelling is kept. Only `.` goes, never `..`
/// (through a link, `x/..` is elsewhere).
pub fn spelled_alike(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| *c != std::path::Component::CurDir)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Audio formats the decoder does not read are walked (their rows name the format);
    /// a Mac's AppleDouble files beside them are not, nor are other names.
    #[test]
    fn a_walk_takes_audio_names_and_leaves_apple_double_files() {
        for audio in [
            "a.WAV", "b.webm", "c.wv", "d.w64", "e.aifc", "f.ape", "g.wma",
        ] {
            assert!(is_audio_name(Path::new(audio)), "{audio}");
        }
        for other in [
            "._a.wav",
            "x/._b.FLAC",
            "film.mkv",
            "cover.jpg",
            "wav",
            ".wav",
        ] {
            assert!(!is_audio_name(Path::new(other)), "{other}");
        }
    }

    /// One file given as `a.wav` and `./a.wav`, or a folder as `d` and `./d`, is listed
    /// once, as first spelled (it was analysed twice, two rows).
    #[test]
    fn a_path_spelled_with_dots_is_met_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("d");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("a.wav"), b"").unwrap();
        let dotted = dir.path().join(".").join("d");
        let (files, _) = collect_audio_files(&[
            d.join("a.wav"),
            d.join(".").join("a.wav"),
            dotted.clone(),
            d.clone(),
        ]);
        assert_eq!(files, vec![d.join("a.wav")]);
        let (files, _) = collect_audio_files(&[PathBuf::from("./x.wav"), PathBuf::from("x.wav")]);
        assert_eq!(files, vec![PathBuf::from("./x.wav")]);
    }

    /// A folder named again is walked once: its files are listed once, and what it cannot
    /// enter is one error, not one a naming (a request naming a folder 690,000 times
    /// walked it as often).
    #[cfg(unix)]
    #[test]
    fn a_folder_named_again_is_walked_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("d");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("a.wav"), b"").unwrap();
        std::os::unix::fs::symlink("..", d.join("sub/up")).unwrap();
        let named: Vec<PathBuf> = (0..1000).map(|_| d.clone()).collect();
        let (files, errors) = collect_audio_files(&named);
        assert_eq!(files, vec![d.join("a.wav")]);
        assert_eq!(errors.len(), 1, "{errors:?}");
    }

    /// A link to the root's parent (or higher) is a loop: followed, it walked the root
    /// again as a plain folder (two rows of one file) and the folders beside it.
    #[cfg(unix)]
    #[test]
    fn a_link_above_the_root_is_a_loop() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("lib");
        std::fs::create_dir_all(lib.join("album/disc")).unwrap();
        std::fs::create_dir_all(lib.join("other")).unwrap();
        std::fs::write(lib.join("album/a.wav"), b"").unwrap();
        std::fs::write(lib.join("other/b.wav"), b"").unwrap();
        std::os::unix::fs::symlink("..", lib.join("album/up")).unwrap();
        std::os::unix::fs::symlink("../../..", lib.join("album/disc/top")).unwrap();
        let album = lib.join("album");
        let (files, errors) = collect_audio_files(std::slice::from_ref(&album));
        assert_eq!(files, vec![album.join("a.wav")]);
        let looped: Vec<&Path> = errors.iter().map(|e| e.path.as_path()).collect();
        assert_eq!(looped, [album.join("disc/top"), album.join("up")]);
        // The ancestor is spelled from the root as given, wherever the library lies.
        let ancestors: Vec<&str> = errors.iter().map(|e| e.reason.as_str()).collect();
        let spelled = |p: PathBuf| {
            format!(
                "walk: loop: link points back to its ancestor {}",
                p.display()
            )
        };
        assert_eq!(
            ancestors,
            [spelled(album.join("../..")), spelled(album.join(".."))]
        );
        // A link met again from a second root is one row.
        let (_, again) = collect_audio_files(&[album.clone(), album.join("disc")]);
        assert_eq!(again.len(), 2, "{again:?}");
        // From the library's root, `up` leads to the root itself and `top` above it.
        let (files, errors) = collect_audio_files(std::slice::from_ref(&lib));
        assert_eq!(
            files,
            vec![lib.join("album/a.wav"), lib.join("other/b.wav")]
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        // A root given through a link is walked, not taken for a loop of its own.
        let linked = dir.path().join("linked");
        std::os::unix::fs::symlink(lib.join("other"), &linked).unwrap();
        let (files, errors) = collect_audio_files(std::slice::from_ref(&linked));
        assert_eq!((files, errors), (vec![linked.join("b.wav")], vec![]));
    }

    #[test]
    fn audio_extensions_ignore_case() {
        assert!(is_audio_name(Path::new("a/b.WAV")));
        assert!(is_audio_name(Path::new("b.Flac")));
        assert!(!is_audio_name(Path::new("b.txt")));
        assert!(!is_audio_name(Path::new("wav")));
    }

    /// A pipe or a link to a device inside a folder is listed, so its row says what it is;
    /// it is never opened here (a pipe would block the walk).
    #[cfg(unix)]
    #[test]
    fn special_files_with_audio_names_are_listed_not_opened() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let made = std::process::Command::new("mkfifo")
            .arg(d.join("pipe.wav"))
            .status()
            .unwrap();
        assert!(made.success());
        std::os::unix::fs::symlink("/dev/zero", d.join("zero.mp3")).unwrap();
        std::os::unix::fs::symlink("/dev/null", d.join("null.txt")).unwrap();
        let (files, errors) = collect_audio_files(&[d.to_path_buf()]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(files, vec![d.join("pipe.wav"), d.join("zero.mp3")]);
    }

    #[test]
    fn folders_are_walked_sorted_and_files_taken_as_given() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("b/x.mp3")).unwrap();
        for name in [
            "b/2.wav",
            "b/1.MP3",
            "b/x.mp3/in.flac",
            "b/notes.txt",
            "a.wav",
        ] {
            std::fs::write(d.join(name), b"").unwrap();
        }
        std::fs::write(d.join("explicit.bin"), b"").unwrap();
        let args = [d.join("b"), d.join("explicit.bin"), d.join("b/2.wav")];
        let (files, errors) = collect_audio_files(&args);
        let names: Vec<_> = files
            .iter()
            .map(|p| p.strip_prefix(d).unwrap().to_path_buf())
            .collect();
        let want: Vec<PathBuf> = ["b/1.MP3", "b/2.wav", "b/x.mp3/in.flac", "explicit.bin"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(names, want);
        assert!(errors.is_empty());
    }

    /// A refused link stops the walk before anything beyond it is listed; a dangling link is
    /// asked about too; allowed links are followed as `collect_files` follows them.
    #[cfg(unix)]
    #[test]
    fn links_are_asked_about_before_they_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        let (inside, outside) = (dir.path().join("in"), dir.path().join("out"));
        std::fs::create_dir_all(inside.join("lib")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(inside.join("lib/a.wav"), b"").unwrap();
        std::fs::write(outside.join("secret.wav"), b"").unwrap();
        std::os::unix::fs::symlink(&outside, inside.join("lib/b-away")).unwrap();
        let roots = [inside.clone()];
        let stays_inside = |link: &Path| {
            link.canonicalize()
                .is_ok_and(|real| real.starts_with(inside.canonicalize().unwrap()))
        };
        let refused = collect_files_checked(&roots, is_audio_name, stays_inside);
        assert_eq!(refused, Err(inside.join("lib/b-away")));
        let (files, _) = collect_files_checked(&roots, is_audio_name, |_| true).unwrap();
        assert_eq!(
            files,
            [
                inside.join("lib/a.wav"),
                inside.join("lib/b-away/secret.wav")
            ]
        );

        std::fs::remove_file(inside.join("lib/b-away")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("nothing"), inside.join("lib/c.wav")).unwrap();
        let refused = collect_files_checked(&roots, is_audio_name, stays_inside);
        assert_eq!(refused, Err(inside.join("lib/c.wav")));
    }

    /// A link to nothing is a file name like any other: one with an audio name is listed
    /// in its sorted place (its row says why it cannot be read), one without is passed
    /// over like `readme.txt`. It was a walk error, whose row came after every file's.
    #[cfg(unix)]
    #[test]
    fn dangling_links_are_names_listed_in_order_or_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::os::unix::fs::symlink(d.join("gone"), d.join("a.wav")).unwrap();
        std::os::unix::fs::symlink(d.join("gone.txt"), d.join("notes.txt")).unwrap();
        std::fs::write(d.join("b.wav"), b"").unwrap();
        std::fs::write(d.join("readme.txt"), b"").unwrap();
        let (files, errors) = collect_audio_files(&[d.to_path_buf()]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(files, vec![d.join("a.wav"), d.join("b.wav")]);
        // Every name kept: the link is listed too, in its place.
        let (files, errors) = collect_files(&[d.to_path_buf()], |_| true);
        assert!(errors.is_empty(), "{errors:?}");
        let names: Vec<_> = files.iter().map(|f| f.file_name().unwrap()).collect();
        assert_eq!(names, ["a.wav", "b.wav", "notes.txt", "readme.txt"]);
    }

    #[cfg(unix)]
    #[test]
    fn symlink_loops_are_errors_not_hangs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/a.wav"), b"").unwrap();
        std::os::unix::fs::symlink(d, d.join("sub/loop")).unwrap();
        let (files, errors) = collect_audio_files(&[d.to_path_buf()]);
        assert_eq!(files, vec![d.join("sub/a.wav")]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].reason.contains("loop"), "{errors:?}");
    }
}
