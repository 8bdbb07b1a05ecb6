//! `cmd:TEMPLATE`: one external program per file, in its own process group so that a
//! deadline kills a whole pipeline; its key is the last line it prints that reads as a
//! key, its tempo the last number on its other lines, its CPU time what `/proc` says of
//! it once it has exited.

use std::borrow::Cow;
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

/// Runs the command for one file and reads its tempo.
pub(super) fn run_command(
    words: &[String],
    path: &Path,
    stop: &StopSignal,
) -> Result<Estimate, Error> {
    let fail = |kind, detail: String| Error::new(kind, Stage::Tempo, detail);
    let file = as_argument(path);
    let file = file.to_string_lossy();
    let argv: Vec<String> = words.iter().map(|w| w.replace("{file}", &file)).collect();
    let Some((program, args)) = argv.split_first() else {
        return Err(fail(ErrorKind::InvalidConfig, "empty command".into()));
    };
    let mut command = Command::new(program);
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
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());

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
    let out = collect(stdout);
    if !status.success() {
        let err = collect(stderr);
        let err = err.trim();
        let tail = &err[err.len().saturating_sub(STDERR_KEPT)..];
        let tail = tail.trim_start_matches(|c: char| !c.is_ascii() || c.is_whitespace());
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

/// Reads a pipe to its end on a thread of its own, so that a chatty child never blocks.
fn drain(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            // A read error keeps what was read so far.
            let _ = pipe.read_to_end(&mut bytes);
            let _ = tx.send(String::from_utf8_lossy(&bytes).into_owned());
        });
    }
    rx
}

/// What a drained pipe held; empty when a grandchild still holds it open after a second.
fn collect(rx: mpsc::Receiver<String>) -> String {
    rx.recv_timeout(Duration::from_secs(1)).unwrap_or_default()
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
