//! `cmd:TEMPLATE`: one external program per file, in its own process group so that a
//! deadline kills a whole pipeline; its key is the last line it prints that reads as a
//! key, its tempo the last number on its other lines, its CPU time what `/proc` says of
//! it once it has exited. Only the tail of what it prints is kept ([`STDOUT_KEPT`],
//! [`STDERR_READ`]): a tool that prints a log of gigabytes costs no more memory than one
//! that prints its answer.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use analyzer_core::key::Key;
use analyzer_core::{Error, ErrorKind, Stage, StopSignal};

use super::Estimate;
use crate::host::proc_times;

/// Bytes of a failing program's stderr kept in its row's error.
const STDERR_KEPT: usize = 300;

/// Bytes of stderr held while the program runs: room for [`STDERR_KEPT`] once trailing
/// blank lines are trimmed.
const STDERR_READ: usize = 4096;

/// Bytes of stdout held while the program runs, from the first whole line within them:
/// the answer is its last key line and last number, and a line of an answer is short.
const STDOUT_KEPT: usize = 64 * 1024;

/// Runs the command for one file and reads its tempo.
pub(super) fn run_command(
    words: &[String],
    path: &Path,
    stop: &StopSignal,
) -> Result<Estimate, Error> {
    let fail = |kind, detail: String| Error::new(kind, Stage::Tempo, detail);
    let file = as_argument(path);
    let argv: Vec<OsString> = words
        .iter()
        .map(|w| with_file(w, file.as_os_str()))
        .collect();
    let Some((program, args)) = argv.split_first() else {
        return Err(fail(ErrorKind::InvalidConfig, "empty command".into()));
    };
    let mut command = Command::new(program);
    // The program as messages name it.
    let program = Path::new(program).display();
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        // Its own process group, so that a timeout can kill a whole `sh -c "a | b"`.
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let mut child = command
        .spawn()
        .map_err(|e| fail(ErrorKind::External, format!("cannot run `{program}`: {e}")))?;
    let stdout = drain(child.stdout.take(), Tail::lines(STDOUT_KEPT));
    let stderr = drain(child.stderr.take(), Tail::bytes(STDERR_READ));

    let mut poll = Duration::from_millis(1);
    let mut cpu_s = None;
    let status = loop {
        // Only this loop reaps the child, so once /proc shows it exited (a zombie), its
        // times can be read before `wait` reaps it. Without /proc, just poll.
        let exited = match proc_times(child.id()) {
            Some(times) if times.exited => {
                cpu_s = Some(times.cpu_s);
                child.wait().map(Some)
            }
            Some(_) => Ok(None),
            None => child.try_wait(),
        };
        match exited {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => {
                kill(&mut child);
                return Err(fail(ErrorKind::External, format!("cannot wait: {e}")));
            }
        }
        if let Err(e) = stop.check(Stage::Tempo) {
            kill(&mut child);
            return Err(e);
        }
        std::thread::sleep(poll);
        poll = (poll * 2).min(Duration::from_millis(20));
    };
    let group = child.id();
    let out = collect(&stdout, group);
    if !status.success() {
        let err = collect(&stderr, group);
        let err = err.trim();
        // From a character's start: slicing in the middle of one panicked.
        let tail = &err[err.ceil_char_boundary(err.len().saturating_sub(STDERR_KEPT))..];
        // A character cut by the read tail reads as U+FFFD.
        let tail = tail
            .trim_start_matches(|c: char| c == char::REPLACEMENT_CHARACTER || c.is_whitespace());
        return Err(fail(
            ErrorKind::External,
            format!(
                "`{program}` failed ({status}){}{tail}",
                if tail.is_empty() { "" } else { ": " }
            ),
        ));
    }
    let (key, rest) = split_key(&out);
    let bpm = last_number(&rest).filter(|b| b.is_finite() && *b > 0.0);
    if bpm.is_none() && key.is_none() {
        return Err(fail(
            ErrorKind::External,
            format!("`{program}` printed no positive number and no key on stdout"),
        ));
    }
    Ok(Estimate {
        bpm,
        key,
        no_key: None,
        no_tempo: None,
        confidence: None,
        audio_s: None,
        cpu_s,
        loudness_lufs: None,
        alt_bpm: None,
    })
}

/// `path` as `{file}` is given: a relative path that starts with `-` gets `./`, so that
/// the program reads a file, not an option (`./-dash.wav`, not `-dash.wav`).
fn as_argument(path: &Path) -> Cow<'_, Path> {
    if path.is_relative() && path.as_os_str().as_encoded_bytes().starts_with(b"-") {
        Cow::Owned(Path::new(".").join(path))
    } else {
        Cow::Borrowed(path)
    }
}

/// `word` of the template with each `{file}` replaced by `file`, byte for byte: a name
/// that is not UTF-8 reaches the program as it is on disk.
fn with_file(word: &str, file: &OsStr) -> OsString {
    let mut arg = OsString::new();
    for (i, part) in word.split("{file}").enumerate() {
        if i > 0 {
            arg.push(file);
        }
        arg.push(part);
    }
    arg
}

/// Reads a pipe to its end on a thread of its own, so that a chatty child never blocks,
/// keeping what `tail` keeps of it.
fn drain(pipe: Option<impl Read + Send + 'static>, mut tail: Tail) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        std::thread::spawn(move || {
            let mut chunk = vec![0; 64 * 1024];
            loop {
                match pipe.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => tail.push(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    // A read error keeps what was read so far.
                    Err(_) => break,
                }
            }
            let _ = tx.send(String::from_utf8_lossy(&tail.finish()).into_owned());
        });
    }
    rx
}

/// The last bytes of a stream, at most `cap` of them however much flows through.
struct Tail {
    cap: usize,
    /// Whether a line begun before the kept bytes is dropped from them too, so that half
    /// a number (`0.5` of `120.5`) is never read.
    whole_lines: bool,
    kept: Vec<u8>,
    /// Whether the kept bytes begin inside a line: what was cut off did not end one.
    mid_line: bool,
}

impl Tail {
    /// The last `cap` bytes, from the first whole line among them.
    fn lines(cap: usize) -> Tail {
        Tail {
            cap,
            whole_lines: true,
            kept: Vec::new(),
            mid_line: false,
        }
    }

    /// The last `cap` bytes, as they are.
    fn bytes(cap: usize) -> Tail {
        Tail {
            whole_lines: false,
            ..Tail::lines(cap)
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        self.kept.extend_from_slice(chunk);
        // Cut only once twice the cap is held, so that each byte is moved about once.
        if self.kept.len() > 2 * self.cap {
            self.cut_to_cap();
        }
    }

    fn cut_to_cap(&mut self) {
        let excess = self.kept.len().saturating_sub(self.cap);
        if excess > 0 {
            self.mid_line = !matches!(self.kept[excess - 1], b'\n' | b'\r');
            self.kept.drain(..excess);
        }
    }

    /// What is kept: at most `cap` bytes; by lines, nothing of a line begun before them
    /// (nothing at all when no line begins among them).
    fn finish(mut self) -> Vec<u8> {
        self.cut_to_cap();
        if self.mid_line && self.whole_lines {
            let line_start = self
                .kept
                .iter()
                .position(|&b| b == b'\n' || b == b'\r')
                .map_or(self.kept.len(), |at| at + 1);
            self.kept.drain(..line_start);
        }
        self.kept
    }
}

/// What a drained pipe held. A process the program left behind in its group (`sleep 20 &`)
/// holds the pipe open: after a second it is killed, which ends the pipe, and what the
/// program printed is read (it was thrown away, and the row said it printed nothing).
/// Empty only when something outside the group still holds the pipe.
fn collect(rx: &mpsc::Receiver<String>, group: u32) -> String {
    let wait = Duration::from_secs(1);
    rx.recv_timeout(wait).unwrap_or_else(|_| {
        crate::runner::send_signal(&format!("-{group}"), "KILL");
        rx.recv_timeout(wait).unwrap_or_default()
    })
}

/// Kills the child's process group (and the child), then reaps it.
fn kill(child: &mut Child) {
    // Best effort: the child itself is killed below in any case.
    crate::runner::send_signal(&format!("-{}", child.id()), "KILL");
    let _ = child.kill();
    let _ = child.wait();
}

/// The key in a program's output, and the output without the lines that gave keys (so
/// that `12A` or `C minor 0.83` is not read as a tempo). The last key line wins, as the
/// last number does for tempo.
fn split_key(text: &str) -> (Option<Key>, String) {
    let mut key = None;
    let mut rest = String::new();
    for line in text.lines() {
        match key_in_line(line) {
            Some(found) => key = Some(found),
            None => {
                rest.push_str(line);
                rest.push('\n');
            }
        }
    }
    (key, rest)
}

/// The key one output line gives: the whole line (`C# minor`, `Dbm`, `12A`), after a label
/// ending in `:` or `=` (`key: A minor`), or its first two words (`C minor 0.83`, the key,
/// scale and strength of essentia's extractors).
fn key_in_line(line: &str) -> Option<Key> {
    let text = match line.split_once([':', '=']) {
        Some((label, value)) if label.trim().eq_ignore_ascii_case("key") => value,
        _ => line,
    };
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    text.parse().ok().or_else(|| {
        let words: Vec<&str> = text.split_whitespace().take(2).collect();
        (words.len() == 2)
            .then(|| words.join(" ").parse().ok())
            .flatten()
    })
}

/// The last number in `text` (`"tempo: 120.5 bpm"` gives 120.5).
fn last_number(text: &str) -> Option<f64> {
    text.split(|c: char| {
        !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E')
    })
    .filter_map(|w| {
        let w = w.trim_matches(|c: char| !c.is_ascii_digit());
        if w.is_empty() {
            None
        } else {
            w.parse::<f64>().ok()
        }
    })
    .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_number_takes_the_last() {
        assert_eq!(last_number("122.46 bpm\n"), Some(122.46));
        assert_eq!(last_number("123.032\n"), Some(123.032));
        assert_eq!(last_number("file 3.wav: tempo=97.5"), Some(97.5));
        assert_eq!(last_number("a-b e"), None);
        assert_eq!(last_number(""), None);
    }

    #[test]
    fn keys_are_read_from_the_spellings_tools_print() {
        let key = |text: &str| split_key(text).0.map(|k| k.to_string());
        for (out, want) in [
            ("C# minor\n", "C# minor"),
            ("Dbm\n", "C# minor"),
            ("key: A minor\n", "A minor"),
            ("Key = Bb major\n", "A# major"),
            ("12A\n", "C# minor"),
            ("C:min\n", "C minor"),
            ("F minor 0.83\n", "F minor"),
            // The last key line wins.
            ("G major\nE minor\n", "E minor"),
        ] {
            assert_eq!(key(out).as_deref(), Some(want), "{out:?}");
        }
        for out in [
            "120\n",
            "tempo: 128.0 bpm\n",
            "Am I done?\n",
            "",
            "H minor\n",
        ] {
            assert_eq!(key(out), None, "{out:?}");
        }
        // Key lines are not searched for a tempo; the other lines are, as before.
        let (found, rest) = split_key("122.5\n12A\n");
        assert_eq!(found.map(|k| k.camelot()), Some("12A".into()));
        assert_eq!(last_number(&rest), Some(122.5));
        assert_eq!(last_number(&split_key("12A\n").1), None);
    }

    #[test]
    fn a_relative_path_starting_with_a_dash_is_not_an_option() {
        assert_eq!(
            as_argument(Path::new("-dash.wav")),
            Path::new("./-dash.wav")
        );
        assert_eq!(as_argument(Path::new("-d/a.wav")), Path::new("./-d/a.wav"));
        for kept in ["a-b.wav", "./-dash.wav", "/m/-dash.wav", "sub/-x.wav"] {
            assert_eq!(as_argument(Path::new(kept)), Path::new(kept));
        }
        // What the program is given: 7 when its argument starts with `./-`.
        let never = StopSignal::never();
        let words =
            shlex::split("sh -c 'case \"$1\" in ./-*) echo 7;; *) echo 0;; esac' sh {file}")
                .unwrap();
        let e = run_command(&words, Path::new("-dash.wav"), &never).unwrap();
        assert_eq!(e.bpm, Some(7.0));
    }

    /// A name that is not UTF-8 reaches the program byte for byte: it was given the lossy
    /// `a\u{FFFD}.wav`, a file that does not exist.
    #[cfg(unix)]
    #[test]
    fn a_name_that_is_not_utf8_reaches_the_program_as_it_is() {
        use std::os::unix::ffi::OsStrExt;
        let name = OsStr::from_bytes(b"a\xFF.wav");
        assert_eq!(
            with_file("in={file}:{file}", name).as_bytes(),
            b"in=a\xFF.wav:a\xFF.wav"
        );
        assert_eq!(with_file("plain", name), "plain");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, b"audio").unwrap();
        let words =
            shlex::split("sh -c 'if test -f \"$0\"; then echo 1; else echo 2; fi' {file}").unwrap();
        let e = run_command(&words, &path, &StopSignal::never()).unwrap();
        assert_eq!(e.bpm, Some(1.0));
    }

    #[test]
    fn a_tail_keeps_the_last_bytes_from_the_first_whole_line() {
        let fed = |mut tail: Tail, chunks: &[&[u8]]| {
            for chunk in chunks {
                tail.push(chunk);
            }
            tail.finish()
        };
        // 20 bytes through a cap of 10: `0.5\nab\n99\n` is the last 10, and `0.5` is the
        // end of a line begun before them.
        let chunks: [&[u8]; 2] = [b"garbage 12", b"0.5\nab\n99\n"];
        assert_eq!(fed(Tail::lines(10), &chunks), b"ab\n99\n");
        assert_eq!(fed(Tail::bytes(10), &chunks), b"0.5\nab\n99\n");
        // Nothing cut: all of it, a first line included. A line longer than the cap, cut:
        // nothing of it.
        assert_eq!(fed(Tail::lines(10), &[b"12", b"0.5"]), b"120.5");
        assert_eq!(fed(Tail::lines(10), &[b"x".repeat(30).as_slice()]), b"");
        // Cut where a line ends (`\n` or `\r`): every line kept.
        assert_eq!(fed(Tail::lines(4), &[b"a\rb\n120\n"]), b"120\n");
        assert_eq!(fed(Tail::lines(6), &[b"a\rb\n120\n"]), b"b\n120\n");
        // However much flows through, at most twice the cap is ever held.
        let mut tail = Tail::lines(1000);
        for i in 0..10_000 {
            tail.push(format!("line {i}\n").as_bytes());
            assert!(tail.kept.len() <= 2000, "{} bytes held", tail.kept.len());
        }
        tail.push(&[b'y'; 5000]);
        assert!(tail.kept.len() <= 2000, "{} bytes held", tail.kept.len());
        tail.push(b"\n120\n");
        assert_eq!(tail.finish(), b"120\n");
    }

    /// A tool that prints megabytes before its answer is read as before, from the tail
    /// that is all that is held of its stdout and stderr.
    #[cfg(unix)]
    #[test]
    fn an_answer_after_megabytes_of_output_is_read() {
        let words = |s: &str| shlex::split(s).unwrap();
        let never = StopSignal::never();
        // Some 6.9 MB of numbered lines on each stream, 5 MB of one line, then the answer.
        let chatty = "seq 1000000; seq 1000000 >&2; head -c 5000000 /dev/zero | tr '\\0' x; echo";
        let e = run_command(
            &words(&format!(
                "sh -c \"{chatty}; echo tempo: 120.5; echo key: A minor\""
            )),
            Path::new("x.wav"),
            &never,
        )
        .unwrap();
        assert_eq!(e.bpm, Some(120.5));
        assert_eq!(e.key.map(|k| k.to_string()).as_deref(), Some("A minor"));
        let err = run_command(
            &words(&format!("sh -c \"{chatty}; echo it broke >&2; exit 1\"")),
            Path::new("x.wav"),
            &never,
        )
        .unwrap_err();
        let reason = err.reason();
        assert!(reason.ends_with("\n999999\n1000000\nit broke"), "{reason}");
        assert!(reason.len() < STDERR_KEPT + 50, "{reason}");
    }

    /// A failing program's stderr is cut at a character, never inside one (which panicked),
    /// and what it says past ASCII is kept (it was trimmed away).
    #[test]
    fn stderr_is_cut_at_a_character() {
        // 602 bytes: the last 300 begin inside a `€`.
        let script = "for i in $(seq 200); do printf €; done >&2; printf ab >&2; exit 1";
        let words = ["sh".to_string(), "-c".into(), script.into()];
        let err = run_command(&words, Path::new("x.wav"), &StopSignal::never()).unwrap_err();
        let want = format!("(exit status: 1): {}ab", "€".repeat(99));
        assert!(err.reason().ends_with(&want), "{}", err.reason());
    }

    /// A program that leaves a process behind holding its stdout (`sleep 30 &`) still has
    /// its answer read: the leftover is killed, which ends the pipe (the row said the
    /// program printed nothing).
    #[test]
    fn a_leftover_process_on_the_pipe_keeps_no_answer_from_being_read() {
        let words = ["sh".to_string(), "-c".into(), "sleep 30 & echo 120".into()];
        let estimate = run_command(&words, Path::new("x.wav"), &StopSignal::never()).unwrap();
        assert_eq!(estimate.bpm, Some(120.0));
    }

    #[test]
    fn a_command_may_give_a_key_a_tempo_or_both() {
        let words = |s: &str| shlex::split(s).unwrap();
        let never = StopSignal::never();
        let run = |cmd: &str| run_command(&words(cmd), Path::new("x.wav"), &never).unwrap();
        let both = run("printf '128.0\\nkey: D minor\\n'");
        assert_eq!(both.bpm, Some(128.0));
        assert_eq!(both.key.map(|k| k.to_string()).as_deref(), Some("D minor"));
        let key_only = run("echo 8A");
        assert_eq!(key_only.bpm, None);
        assert_eq!(
            key_only.key.map(|k| k.to_string()).as_deref(),
            Some("A minor")
        );
        let tempo_only = run("echo 97.5");
        assert_eq!((tempo_only.bpm, tempo_only.key), (Some(97.5), None));
        let err = run_command(&words("echo nothing"), Path::new("x"), &never).unwrap_err();
        assert!(err.reason().contains("no key"), "{}", err.reason());
    }

    #[test]
    fn commands_give_tempo_errors_and_cpu() {
        let words = |s: &str| shlex::split(s).unwrap();
        let never = StopSignal::never();
        let e = run_command(
            &words("sh -c 'echo x; echo \"$0 at 121.5\"' {file}"),
            Path::new("a b.wav"),
            &never,
        )
        .unwrap();
        assert_eq!(e.bpm, Some(121.5));
        assert!(e.cpu_s.is_some());
        let err = run_command(
            &words("sh -c 'echo oops >&2; exit 3'"),
            Path::new("x"),
            &never,
        )
        .unwrap_err();
        assert!(err.reason().contains("oops"), "{}", err.reason());
        assert_eq!(err.kind(), ErrorKind::External);
        let err = run_command(&words("true"), Path::new("x"), &never).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::External);
        assert!(err.reason().contains("printed no positive number"));
        let err = run_command(&words("no-such-program-here"), Path::new("x"), &never).unwrap_err();
        assert!(err.reason().contains("cannot run"));
        assert_eq!(err.kind(), ErrorKind::External);
        // A deadline that has already passed: the first check after the start kills the
        // pipeline, which would otherwise run for an hour and then print nothing (a
        // `no_pulse` error), so `timed_out` alone proves the deadline stopped it.
        let stop = StopSignal::never().with_deadline(std::time::Instant::now());
        let err =
            run_command(&words("sh -c 'sleep 3600 | cat'"), Path::new("x"), &stop).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut);
    }
}
