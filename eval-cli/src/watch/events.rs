//! Which of the kernel's events bring a file to read: a write closed, a move in, a link or
//! pipe made (whole when made), a folder moved in or made (walked, as the first pass
//! walks); and which files found so are still being written by another process (left for
//! their writer's close).

use std::path::{Path, PathBuf};

use analyzer_core::batch::{self, WalkError};
use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{Event, EventKind};

use super::folder_identity;
use crate::writers::Writers;

/// The files an event says are complete and worth analysing: written and closed, or moved
/// in (a folder moved in: every audio file under it, and what could not be walked there).
pub(super) fn complete_files(event: &Event) -> (Vec<PathBuf>, Vec<WalkError>) {
    // A rename inside the folders is reported twice, `To` (the destination) and then
    // `Both` (source and destination): `To` alone stands for it, so it is read once.
    let Some(path) = event.paths.first() else {
        return (Vec::new(), Vec::new());
    };
    let complete = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write))
        | EventKind::Modify(ModifyKind::Name(RenameMode::To)) => true,
        // A folder made is walked: the files written into it before its watch was added
        // (`cp -r album music/`) bring no event of their own, and were never read.
        EventKind::Create(_) => path
            .symlink_metadata()
            .is_ok_and(|m| whole_when_made(&m) || m.is_dir()),
        _ => false,
    };
    if !complete {
        return (Vec::new(), Vec::new());
    }
    if path.is_dir() {
        // A link made to a folder that holds it (`ln -s .. lib/sub/up`): walked, it named
        // every file of the library again under the link. The first pass's walk finds such
        // a link looping and gives it an error row; so does this.
        if let Some(ancestor) = loop_ancestor(path) {
            let reason = batch::loop_reason(&ancestor);
            let path = path.clone();
            let error = WalkError {
                path,
                reason,
                out_of_files: false,
            };
            return (Vec::new(), vec![error]);
        }
        batch::collect_audio_files(std::slice::from_ref(path))
    } else if batch::is_audio_name(path) {
        (vec![path.clone()], Vec::new())
    } else {
        (Vec::new(), Vec::new())
    }
}

/// The folder above `folder` that `folder` is (a link to it), named as the walk names it:
/// under the watched folder as given where it is one of those, else absolute.
fn loop_ancestor(folder: &Path) -> Option<PathBuf> {
    let itself = folder_identity(folder)?;
    let absolute = std::path::absolute(folder).ok()?;
    folder
        .ancestors()
        .skip(1)
        .chain(absolute.ancestors().skip(1))
        .filter(|ancestor| !ancestor.as_os_str().is_empty())
        .find(|ancestor| folder_identity(ancestor) == Some(itself))
        .map(Path::to_path_buf)
}

/// `files` less those another process holds open for writing (`writers`): a copy still at
/// work, whose row comes when it closes the file (the kernel reports that close, and the
/// folder is watched by then). Read now, it gave a row of half the audio, and with
/// `--write-tags` its tagged copy replaced it, so the rest of the copy was lost.
pub(super) fn not_being_written(files: Vec<PathBuf>, writers: &Writers) -> Vec<PathBuf> {
    files
        .into_iter()
        .filter(|path| {
            let held = std::fs::metadata(path).is_ok_and(|meta| writers.hold(&meta));
            if held {
                eprintln!(
                    "eval-cli: {}: another process has it open for writing; its row comes \
                     when that writer closes it",
                    path.display()
                );
            }
            !held
        })
        .collect()
}

/// Whether a file whose `Create` event is being handled is whole already, as no write
/// (no `Close(Write)`) follows its making: a symbolic link (`symlink(2)`), a second name
/// of a file (`link(2)`: a regular file with more than one link), and a named pipe, socket
/// or device (their error row, as `analyze` gives it; they are never opened for reading).
/// (A folder made is walked for the files already in it, [`complete_files`].)
fn whole_when_made(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    let kind = meta.file_type();
    kind.is_symlink() || (kind.is_file() && meta.nlink() > 1) || !(kind.is_file() || kind.is_dir())
}

#[cfg(test)]
pub(super) fn event(kind: EventKind, paths: &[&Path]) -> Event {
    let mut event = Event::new(kind);
    for p in paths {
        event = event.add_path(p.to_path_buf());
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::CreateKind;

    #[test]
    fn only_closed_writes_and_arrivals_are_complete() {
        let dir = tempfile::tempdir().unwrap();
        let song = dir.path().join("a.wav");
        std::fs::write(&song, b"").unwrap();
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert_eq!(
            complete_files(&event(closed, &[&song])).0,
            vec![song.clone()]
        );
        let moved = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        assert_eq!(
            complete_files(&event(moved, &[&song])).0,
            vec![song.clone()]
        );
        // The second report of a rename inside the folders: `To` already stood for it.
        let both = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        let from = dir.path().join("old.wav");
        assert!(complete_files(&event(both, &[&from, &song])).0.is_empty());
        // Still being written: not yet.
        let created = EventKind::Create(CreateKind::File);
        assert!(complete_files(&event(created, &[&song])).0.is_empty());
        let data = EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any));
        assert!(complete_files(&event(data, &[&song])).0.is_empty());
        // Not audio, or this command's own tagging copy.
        let notes = dir.path().join(".a.wav.x1y2z3.tagging");
        assert!(complete_files(&event(closed, &[&notes])).0.is_empty());
    }

    /// `ln -s` raises only `Create`: a link is whole at once and is read then; a plain
    /// file's `Create` still waits for its writer to close it.
    #[test]
    fn a_link_made_in_the_folder_is_complete_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside.wav");
        std::fs::write(&outside, b"").unwrap();
        let link = dir.path().join("link.wav");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let created = EventKind::Create(CreateKind::File);
        assert_eq!(
            complete_files(&event(created, &[&link])).0,
            vec![link.clone()]
        );
        assert!(complete_files(&event(created, &[&outside])).0.is_empty());
        // `ln` (a second name: two links) and `mkfifo` raise only `Create` too; a folder
        // made there is walked for the files written before its watch (`cp -r`): their
        // events came before the watch and never arrive.
        let hard = dir.path().join("hard.wav");
        std::fs::hard_link(&outside, &hard).unwrap();
        assert_eq!(
            complete_files(&event(created, &[&hard])).0,
            vec![hard.clone()]
        );
        let pipe = dir.path().join("pipe.wav");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&pipe)
                .status()
                .unwrap()
                .success()
        );
        assert_eq!(
            complete_files(&event(created, &[&pipe])).0,
            vec![pipe.clone()]
        );
        let folder = dir.path().join("album.wav");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("copied.wav"), b"").unwrap();
        assert_eq!(
            complete_files(&event(EventKind::Create(CreateKind::Folder), &[&folder])).0,
            vec![folder.join("copied.wav")]
        );
    }

    #[test]
    fn a_folder_moved_in_gives_its_audio_files() {
        let dir = tempfile::tempdir().unwrap();
        let album = dir.path().join("album");
        std::fs::create_dir_all(album.join("cd2")).unwrap();
        for name in ["1.flac", "cd2/2.mp3", "cover.jpg"] {
            std::fs::write(album.join(name), b"").unwrap();
        }
        // What its walk cannot enter is a row, as in the first pass (it was left out).
        std::os::unix::fs::symlink("..", album.join("cd2/up")).unwrap();
        let moved = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        let (files, errors) = complete_files(&event(moved, &[&album]));
        assert_eq!(files, [album.join("1.flac"), album.join("cd2/2.mp3")]);
        assert_eq!(
            errors.iter().map(|e| &e.path).collect::<Vec<_>>(),
            [&album.join("cd2/up")]
        );
        assert!(errors[0].reason.starts_with("walk: loop"), "{errors:?}");
    }

    /// A link made to a folder that holds it (`ln -s .. lib/sub/up`) is the error row the
    /// first pass's walk gives it; walked, it named every file of the library again under
    /// the link.
    #[test]
    fn a_link_to_a_folder_that_holds_it_is_the_first_passs_error_row() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("lib");
        std::fs::create_dir_all(lib.join("sub")).unwrap();
        std::fs::write(lib.join("a.wav"), b"").unwrap();
        std::os::unix::fs::symlink("..", lib.join("sub/up")).unwrap();
        let created = EventKind::Create(CreateKind::File);
        let (files, errors) = complete_files(&event(created, &[&lib.join("sub/up")]));
        assert_eq!(files, Vec::<PathBuf>::new());
        let (first_pass_files, first_pass_errors) =
            batch::collect_audio_files(std::slice::from_ref(&lib));
        assert_eq!(first_pass_files, [lib.join("a.wav")]);
        assert_eq!(errors, first_pass_errors);
        // A link to a folder that does not hold it is walked.
        std::fs::create_dir(dir.path().join("other")).unwrap();
        std::fs::write(dir.path().join("other/b.wav"), b"").unwrap();
        std::os::unix::fs::symlink("../other", lib.join("other")).unwrap();
        let (files, errors) = complete_files(&event(created, &[&lib.join("other")]));
        assert_eq!((files, errors), (vec![lib.join("other/b.wav")], vec![]));
    }
}
