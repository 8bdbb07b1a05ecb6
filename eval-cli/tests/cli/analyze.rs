//! `eval-cli analyze` as a user runs it: identical bytes for any worker count, one row
//! per file however broken the folder, timeouts, usage errors, and Ctrl-C then `--resume`.
//! One file over 500 lines: each test is one scenario of the one command, and they share
//! its library, its runner and the `--out` and `--resume` helpers below.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

#[cfg(target_os = "linux")]
use crate::util::RunningProgram;
use crate::util::{
    RATE, click_file, click_library, click_wav, edit_identity_log, eval_cli, eval_cli_process,
    fifo, identities_taken_an_hour_on, latin1_cells, latin1_pair, os, pcm16_wav, rows,
    write_tracks,
};

fn analyze(args: &[&OsStr]) -> Output {
    eval_cli().arg("analyze").args(args).output().unwrap()
}

/// Runs `analyze ARGS`, which must succeed, and returns the bytes it wrote to `out`.
fn analyze_to(args: &[&OsStr], out: &Path) -> Vec<u8> {
    let result = analyze(args);
    assert_eq!(result.status.code(), Some(0), "{result:?}");
    fs::read(out).unwrap()
}

const TEMPI: [f64; 10] = [
    90.0, 96.0, 100.0, 108.0, 115.0, 120.0, 128.0, 135.0, 140.0, 150.0,
];

fn library(dir: &Path) -> PathBuf {
    let lib = dir.join("lib");
    // Different lengths and codecs, so the longest-first schedule reorders them.
    write_tracks(
        &lib,
        TEMPI.iter().enumerate().map(|(i, &bpm)| {
            let name = if i % 5 == 4 {
                format!("{i:02}-{bpm}.flac")
            } else if i % 3 == 0 {
                format!("sub/{i:02}-{bpm}.wav")
            } else {
                format!("{i:02}-{bpm}.WAV")
            };
            (name, bpm, 4.0 + (i % 4) as f64)
        }),
    );
    fs::write(lib.join("notes.txt"), "not audio").unwrap();
    lib
}

fn bpm_in_name(path: &str) -> f64 {
    let stem = Path::new(path).file_stem().unwrap().to_str().unwrap();
    stem.split('-').nth(1).unwrap().parse().unwrap()
}

#[test]
fn same_bytes_for_any_worker_count_and_right_tempi() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path());
    let mut outputs = Vec::new();
    for (workers, schedule) in [
        ("1", "longest"),
        ("2", "longest"),
        ("8", "longest"),
        ("8", "input"),
    ] {
        let out = dir.path().join(format!("out-{workers}-{schedule}.csv"));
        let result = analyze(&[
            lib.as_os_str(),
            os("--out"),
            out.as_os_str(),
            os("--workers"),
            os(workers),
            os("--schedule"),
            os(schedule),
        ]);
        assert_eq!(result.status.code(), Some(0), "{result:?}");
        assert!(result.stdout.is_empty());
        outputs.push(fs::read(&out).unwrap());
    }
    for other in &outputs[1..] {
        assert_eq!(
            String::from_utf8_lossy(other),
            String::from_utf8_lossy(&outputs[0])
        );
    }
    // Without --out the same bytes go to stdout.
    let stdout = analyze(&[lib.as_os_str(), os("--workers"), os("2")]);
    assert_eq!(stdout.status.code(), Some(0));
    assert_eq!(stdout.stdout, outputs[0]);

    let rows = rows(&outputs[0]);
    assert_eq!(rows.len(), TEMPI.len());
    let paths: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted, "folders are walked in name order");
    for row in &rows {
        let truth = bpm_in_name(&row[0]);
        let bpm: f64 = row[1].parse().unwrap();
        assert!((bpm - truth).abs() / truth < 0.02, "{row:?}");
        assert_eq!(row[1], format!("{bpm:.3}"));
        let codec = if row[0].ends_with(".flac") {
            "flac"
        } else {
            "pcm_s16le"
        };
        assert_eq!(&row[6..10], ["22050", "1", codec, "ok"], "{row:?}");
        // Clicks have a tempo and no key: the only note is why.
        assert_eq!(
            row[10], "no key: no pitched sound in 100 % of the audio",
            "{row:?}"
        );
        assert!(row[11..].iter().all(String::is_empty), "{row:?}");
    }
}

/// `ulimit -n 8` (3 standard streams and 5 more) cannot hold 8 workers at 2 descriptors
/// each: their opens failed at random (`open: unreadable: Too many open files`). The count
/// is lowered to fit, with a warning, and the rows are those of one worker.
#[cfg(unix)]
#[test]
fn a_low_open_file_limit_lowers_the_workers_and_keeps_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path());
    let one = analyze(&[lib.as_os_str(), os("--workers"), os("1")]);
    assert_eq!(one.status.code(), Some(0), "{one:?}");
    let limited = std::process::Command::new("bash")
        .args(["-c", r#"ulimit -n 8 && exec "$0" "$@""#])
        .arg(env!("CARGO_BIN_EXE_eval-cli"))
        .arg("analyze")
        .arg(&lib)
        .args(["--workers", "8"])
        .output()
        .unwrap();
    assert_eq!(limited.status.code(), Some(0), "{limited:?}");
    assert_eq!(
        String::from_utf8_lossy(&limited.stdout),
        String::from_utf8_lossy(&one.stdout)
    );
    let stderr = String::from_utf8_lossy(&limited.stderr);
    assert!(stderr.contains("(ulimit -n); using 1"), "{stderr}");
}

/// A worker count past what memory holds is lowered with a warning; the count times 64
/// MiB overflowed the warning's arithmetic (a panic in debug builds, "about 0 MiB" in
/// release ones).
#[test]
fn a_worker_count_past_memory_is_lowered_without_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path());
    let one = analyze(&[lib.as_os_str(), os("--workers"), os("1")]);
    let huge = analyze(&[lib.as_os_str(), os("--workers"), os("18446744073709551615")]);
    assert_eq!(huge.status.code(), Some(0), "{huge:?}");
    assert_eq!(huge.stdout, one.stdout);
    let stderr = String::from_utf8_lossy(&huge.stderr);
    assert!(
        stderr.contains("18446744073709551615 workers need about 18446744073709551615 MiB"),
        "{stderr}"
    );
}

#[test]
fn broken_files_are_rows_with_reasons_and_good_files_are_right() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("mixed");
    fs::create_dir(&lib).unwrap();
    click_wav(&lib.join("good-120.wav"), 120.0, 6.0);
    fs::create_dir(lib.join("x.mp3")).unwrap();
    click_wav(&lib.join("x.mp3/inner-100.wav"), 100.0, 6.0);
    fs::write(lib.join("empty.wav"), b"").unwrap();
    let noise: Vec<u8> = (0u32..20_000)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    fs::write(lib.join("noise.mp3"), noise).unwrap();
    // Header promises more than is there.
    click_wav(&lib.join("truncated.wav"), 120.0, 10.0);
    let full = fs::read(lib.join("truncated.wav")).unwrap();
    fs::write(lib.join("truncated.wav"), &full[..full.len() / 2]).unwrap();
    // Data chunk size far larger than the file.
    let mut lying = full.clone();
    let data = lying.windows(4).position(|w| w == b"data").unwrap();
    lying[data + 4..data + 8].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
    fs::write(lib.join("lying.wav"), lying).unwrap();
    // Float samples, some NaN.
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(lib.join("nan.wav"), spec).unwrap();
    for i in 0..RATE * 4 {
        w.write_sample(if i % 1000 == 0 { f32::NAN } else { 0.1 })
            .unwrap();
    }
    w.finalize().unwrap();
    let silence = pcm16_wav(std::iter::repeat_n(0, RATE as usize * 4));
    fs::write(lib.join("silence.wav"), silence).unwrap();

    let mut expected_rows = 8;
    #[cfg(unix)]
    let unreadable_checked = {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::PermissionsExt;
        std::os::unix::fs::symlink(&lib, lib.join("loop")).unwrap();
        let weird = lib.join(std::ffi::OsStr::from_bytes(b"bad\xff-128.wav"));
        click_wav(&weird, 128.0, 6.0);
        let locked = lib.join("locked.wav");
        click_wav(&locked, 120.0, 4.0);
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
        // Root reads it anyway; then there is nothing to check.
        expected_rows += 3;
        fs::read(&locked).is_err()
    };

    // Failed rows and walk errors too come in the same order, byte for byte, on any
    // worker count.
    let mut outputs = Vec::new();
    for workers in ["1", "2", "3"] {
        let out = dir.path().join(format!("out-{workers}.csv"));
        let result = analyze(&[
            lib.as_os_str(),
            os("--out"),
            out.as_os_str(),
            os("--workers"),
            os(workers),
        ]);
        assert_eq!(result.status.code(), Some(1), "{result:?}");
        outputs.push(fs::read(&out).unwrap());
    }
    for other in &outputs[1..] {
        assert_eq!(
            String::from_utf8_lossy(other),
            String::from_utf8_lossy(&outputs[0])
        );
    }
    let text = &outputs[0];
    let rows = rows(text);
    assert_eq!(
        rows.len(),
        expected_rows,
        "{}",
        String::from_utf8_lossy(text)
    );
    let find = |name: &str| {
        rows.iter()
            .find(|r| r[0].ends_with(name))
            .unwrap_or_else(|| panic!("no row for {name}"))
    };
    for row in &rows {
        assert!(["ok", "error"].contains(&row[9].as_str()), "{row:?}");
        if row[9] != "ok" {
            assert!(!row[10].is_empty(), "failed row without a reason: {row:?}");
            assert!(row[1..5].iter().all(String::is_empty), "{row:?}");
            // A file the tempo stage found no tempo in was decoded: its audio cells stand.
            let decoded = row[10].starts_with("tempo: ");
            assert!(row[5..9].iter().all(|c| c.is_empty() != decoded), "{row:?}");
        }
    }
    for (name, truth) in [
        ("good-120.wav", 120.0),
        ("x.mp3/inner-100.wav", 100.0),
        ("truncated.wav", 120.0),
    ] {
        let row = find(name);
        assert_eq!(row[9], "ok", "{row:?}");
        let bpm: f64 = row[1].parse().unwrap();
        assert!((bpm - truth).abs() / truth < 0.02, "{row:?}");
    }
    for name in ["empty.wav", "noise.mp3", "silence.wav"] {
        assert_eq!(find(name)[9], "error", "{:?}", find(name));
    }
    #[cfg(unix)]
    {
        let weird = find("-128.wav");
        // Its byte 0xFF is escaped in the cell, not lost (path_cell's rule).
        assert!(weird[0].ends_with("bad\\xFF-128.wav"), "{weird:?}");
        assert_eq!(weird[9], "ok");
        assert!(find("loop")[10].contains("loop"), "{:?}", find("loop"));
        if unreadable_checked {
            assert_eq!(find("locked.wav")[9], "error");
        }
    }
}

#[test]
fn a_file_past_its_time_limit_is_a_timeout_row() {
    // A one-nanosecond deadline has passed by the first check (opening the file alone
    // takes longer), so the row says `timeout` however fast the machine is.
    let (_dir, long) = click_file("long.wav", 120.0, 20.0);
    let result = analyze(&[long.as_os_str(), os("--timeout"), os("0.000000001")]);
    assert_eq!(result.status.code(), Some(1), "{result:?}");
    let rows = rows(&result.stdout);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][9], "timeout", "{rows:?}");
    assert!(rows[0][10].contains("timed_out"), "{rows:?}");
}

#[test]
fn a_timeout_over_a_year_is_a_usage_error_and_a_year_is_kept() {
    // 1e19 s once overflowed the deadline arithmetic (a panic, exit 101).
    let (_dir, file) = click_file("clicks.wav", 120.0, 6.0);
    for absurd in ["1e19", "9.3e18", "31536001"] {
        let result = analyze(&[file.as_os_str(), os("--timeout"), os(absurd)]);
        assert_eq!(result.status.code(), Some(2), "{absurd}: {result:?}");
        assert!(result.stdout.is_empty(), "{absurd}: {result:?}");
        let stderr = String::from_utf8(result.stderr).unwrap();
        assert!(
            stderr.contains("must be at most 31536000 seconds (a year)"),
            "{absurd}: {stderr}"
        );
    }
    let result = analyze(&[file.as_os_str(), os("--timeout"), os("31536000")]);
    assert_eq!(result.status.code(), Some(0), "{result:?}");
    assert_eq!(rows(&result.stdout)[0][9], "ok");
}

#[test]
fn explicit_files_whatever_their_name_and_usage_errors() {
    let (dir, odd) = click_file("clicks.dat", 120.0, 6.0);
    let result = analyze(&[odd.as_os_str(), os("--progress"), os("jsonl")]);
    assert_eq!(result.status.code(), Some(0), "{result:?}");
    assert_eq!(rows(&result.stdout)[0][9], "ok");
    let events: Vec<serde_json::Value> = String::from_utf8(result.stderr)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 3);
    assert_eq!(events[0]["event"], "started");
    assert_eq!(events[1]["event"], "file");
    assert_eq!(events[1]["status"], "ok");
    assert!(events[1]["bpm"].as_f64().is_some());
    assert_eq!(events[2]["event"], "finished");
    assert_eq!(events[2]["ok"], 1);

    let missing = dir.path().join("missing.wav");
    let result = analyze(&[missing.as_os_str()]);
    assert_eq!(result.status.code(), Some(1));
    assert_eq!(rows(&result.stdout)[0][9], "error");

    for bad in [
        &["--workers", "0"][..],
        &["--resume"],
        &["--timeout", "-1"],
        &["--min-bpm", "200", "--max-bpm", "100"],
        &["--compound-beat", "eighth"],
    ] {
        let mut args = vec![odd.as_os_str()];
        args.extend(bad.iter().map(|s| os(s)));
        let result = analyze(&args);
        assert_eq!(result.status.code(), Some(2), "{bad:?}: {result:?}");
        assert!(!result.stderr.is_empty());
    }
}

/// Ctrl-C mid-run keeps every finished row whole and exits 130; `--resume` then
/// finishes with the same bytes as a run that was never interrupted.
#[cfg(unix)]
#[test]
fn sigint_then_resume_gives_the_bytes_of_a_clean_run() {
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    fs::create_dir(&lib).unwrap();
    click_wav(&lib.join("source.wav"), 120.0, 60.0);
    let files = 40;
    for i in 0..files {
        fs::hard_link(lib.join("source.wav"), lib.join(format!("{i:02}.wav"))).unwrap();
    }
    fs::remove_file(lib.join("source.wav")).unwrap();

    let clean = dir.path().join("clean.csv");
    let result = analyze(&[
        lib.as_os_str(),
        os("--out"),
        clean.as_os_str(),
        os("--workers"),
        os("2"),
    ]);
    assert_eq!(result.status.code(), Some(0), "{result:?}");
    let clean = fs::read(clean).unwrap();

    let out = dir.path().join("out.csv");
    let mut child = eval_cli_process()
        .arg("analyze")
        .arg(&lib)
        .arg("--out")
        .arg(&out)
        .args(["--workers", "2", "--progress", "off"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Waits for the header and a row; the pause only spaces the reads, it decides nothing.
    while fs::read(&out).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count()) < 2 {
        std::thread::sleep(Duration::from_millis(2));
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let partial = fs::read(&out).unwrap();
    assert!(partial.ends_with(b"\n"));
    let partial_rows = rows(&partial);
    assert!(!partial_rows.is_empty());
    assert!(
        partial_rows.len() < files,
        "the run finished before the signal"
    );
    for row in &partial_rows {
        assert_eq!(row.len(), 22);
        assert_eq!(row[9], "ok", "{row:?}");
    }
    identities_taken_an_hour_on(&out);

    let result = analyze(&[
        lib.as_os_str(),
        os("--out"),
        out.as_os_str(),
        os("--workers"),
        os("2"),
        os("--resume"),
        os("--progress"),
        os("jsonl"),
    ]);
    assert_eq!(result.status.code(), Some(0), "{result:?}");
    let analysed = String::from_utf8_lossy(&result.stderr)
        .lines()
        .filter(|l| l.contains("\"event\":\"file\""))
        .count();
    assert_eq!(
        analysed,
        files - partial_rows.len(),
        "only the missing files are analysed"
    );
    assert_eq!(
        String::from_utf8_lossy(&fs::read(&out).unwrap()),
        String::from_utf8_lossy(&clean)
    );
}

/// The names in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The header and the first `n` rows of a CSV, as a run killed after `n` rows leaves it.
fn first_rows(csv_bytes: &[u8], n: usize) -> &[u8] {
    let ends = csv_bytes.iter().enumerate().filter(|(_, b)| **b == b'\n');
    let (end, _) = ends.clone().nth(n).unwrap();
    &csv_bytes[..=end]
}

/// A library `DIR/lib` of three click WAVs (a, b, c at 100, 120, 140 BPM) and its
/// `DIR/out.csv` as a run killed after two rows leaves it, every logged identity trusted
/// (taken an hour after its file was written). Returns (lib, out).
fn stopped_after_two_of_three(dir: &Path) -> (PathBuf, PathBuf) {
    let lib = dir.join("lib");
    fs::create_dir(&lib).unwrap();
    for (name, bpm) in [("a.wav", 100.0), ("b.wav", 120.0), ("c.wav", 140.0)] {
        click_wav(&lib.join(name), bpm, 6.0);
    }
    let out = dir.join("out.csv");
    assert_eq!(
        analyze(&[lib.as_os_str(), os("--out"), out.as_os_str()])
            .status
            .code(),
        Some(0)
    );
    let complete = fs::read(&out).unwrap();
    fs::write(&out, first_rows(&complete, 2)).unwrap();
    identities_taken_an_hour_on(&out);
    (lib, out)
}

/// The CSV of a fresh run on `lib` as it is now (written to `DIR/fresh.csv`).
fn fresh_csv(dir: &Path, lib: &Path) -> Vec<u8> {
    let fresh = dir.join("fresh.csv");
    let result = analyze(&[lib.as_os_str(), os("--out"), fresh.as_os_str()]);
    assert_eq!(result.status.code(), Some(0), "{result:?}");
    fs::read(&fresh).unwrap()
}

/// How many files a `--progress jsonl` run analysed.
fn files_analysed(result: &Output) -> usize {
    String::from_utf8_lossy(&result.stderr)
        .matches("\"event\":\"file\"")
        .count()
}

/// Runs `args` again with `--resume`, checks that it succeeds and leaves `out` holding the
/// `complete` bytes, and gives how many files it analysed.
fn resume_to(args: &[&OsStr], out: &Path, complete: &[u8]) -> usize {
    let mut resumed = args.to_vec();
    resumed.extend([os("--resume"), os("--progress"), os("jsonl")]);
    let result = analyze(&resumed);
    assert_eq!(result.status.code(), Some(0), "{result:?}");
    assert_eq!(fs::read(out).unwrap(), complete);
    files_analysed(&result)
}

/// Runs `analyze INPUT --out OUT` and checks that it is refused with exit 2 before any
/// row, with an error that names OUT and says `reason`.
fn assert_out_refused(input: &Path, out: &Path, reason: &str) {
    let result = analyze(&[input.as_os_str(), os("--out"), out.as_os_str()]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(2), "{}: {stderr}", out.display());
    assert!(
        stderr.contains(&*out.to_string_lossy()) && stderr.contains(reason),
        "{}: {stderr}",
        out.display()
    );
    assert!(result.stdout.is_empty());
}

/// `--out` never replaces one of the run's inputs, however it is named: the file itself,
/// one found in a folder given as input, or a symlink to either. The WAV keeps every byte.
#[test]
fn out_naming_an_input_is_refused_and_the_input_is_intact() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("s");
    fs::create_dir(&lib).unwrap();
    let song = lib.join("song.wav");
    click_wav(&song, 120.0, 4.0);
    let bytes = fs::read(&song).unwrap();
    let link = dir.path().join("link.csv");
    #[cfg(unix)]
    std::os::unix::fs::symlink(&song, &link).unwrap();
    #[cfg(not(unix))]
    fs::hard_link(&song, &link).unwrap();
    for (input, out) in [(&song, &song), (&lib, &song), (&lib, &link), (&song, &link)] {
        assert_out_refused(input, out, "one of this run's input files");
    }
    assert_eq!(fs::read(&song).unwrap(), bytes);
    assert_eq!(names_in(&lib), ["song.wav"]);
}

/// `--out` never opens a device, a FIFO, a folder or a symlink to one, nor an open file
/// of the process (`/proc/self/fd/1`, `/dev/stdout`), nor `-`: refused before anything is
/// written.
#[cfg(unix)]
#[test]
fn out_that_is_not_a_regular_file_is_refused() {
    use std::os::unix::fs::{FileTypeExt, symlink};

    let (dir, song) = click_file("song.wav", 120.0, 4.0);
    let fifo = fifo(&dir.path().join("fifo.csv"));
    let to_null = dir.path().join("null.csv");
    symlink("/dev/null", &to_null).unwrap();
    let to_stdout = dir.path().join("stdout.csv");
    symlink("/proc/self/fd/1", &to_stdout).unwrap();
    let folder = dir.path().join("folder.csv");
    fs::create_dir(&folder).unwrap();
    for (out, reason) in [
        (Path::new("/dev/null"), "a character device"),
        (&to_null, "a symlink to a character device"),
        (&fifo, "a FIFO"),
        (&to_stdout, "an open file of this process"),
        (Path::new("/proc/self/fd/1"), "an open file of this process"),
        (Path::new("/dev/stdout"), "an open file of this process"),
        (Path::new("-"), "a file named `-`"),
        (&folder, "a directory"),
    ] {
        assert_out_refused(&song, out, reason);
    }
    // With stdout sent to a file (`--out /dev/stdout >> log.txt`), `/dev/stdout` leads to
    // that regular file: the run replaced it, and the log was lost. Refused, the log kept.
    let log = dir.path().join("log.txt");
    fs::write(&log, "my notes\n").unwrap();
    let result = eval_cli_process()
        .args(["analyze", "--out", "/dev/stdout"])
        .arg(&song)
        .stdout(fs::OpenOptions::new().append(true).open(&log).unwrap())
        .output()
        .unwrap();
    assert_eq!(result.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&result.stderr).contains("an open file of this process"));
    assert_eq!(fs::read_to_string(&log).unwrap(), "my notes\n");
    assert!(
        fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
    assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
    assert!(names_in(&folder).is_empty());
    assert_eq!(
        names_in(dir.path()),
        [
            "fifo.csv",
            "folder.csv",
            "log.txt",
            "null.csv",
            "song.wav",
            "stdout.csv"
        ]
    );
}

/// Runs `analyze ARGS`, which must exit 2 with an error naming `named` and `reason`, with
/// nothing on stdout.
fn assert_refused(args: &[&OsStr], named: &Path, reason: &str) {
    let result = analyze(args);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(
        result.status.code(),
        Some(2),
        "{}: {stderr}",
        named.display()
    );
    let says = format!("refusing to write {}: {reason}", named.display());
    assert!(stderr.contains(&says), "{says}: {stderr}");
    assert!(result.stdout.is_empty());
}

/// An input named like a side file of `--out` (`OUT.settings.json`, `OUT.identities.csv`,
/// `OUT.lock`, a shard's `OUT.shard.json`), or reached through one (a symlink there), is
/// refused as `--out` itself would be: exit 2, the side file named, the input's bytes
/// unchanged and nothing written.
#[test]
fn an_input_named_like_a_side_file_of_out_is_refused_and_intact() {
    let (dir, song) = click_file("song.wav", 120.0, 4.0);
    let bytes = fs::read(&song).unwrap();
    let out = dir.path().join("o.csv");
    let shard: &[&str] = &["--shard", "1/1"];
    for (suffix, flags) in [
        (".settings.json", &[][..]),
        (".identities.csv", &[]),
        (".lock", &[]),
        (".shard.json", shard),
    ] {
        let side = dir.path().join(format!("o.csv{suffix}"));
        fs::copy(&song, &side).unwrap();
        let mut args = vec![side.as_os_str(), os("--out"), out.as_os_str()];
        args.extend(flags.iter().map(|f| os(f)));
        assert_refused(&args, &side, "it is one of this run's input files");
        assert_eq!(fs::read(&side).unwrap(), bytes, "{suffix}");
        assert_eq!(
            names_in(dir.path()),
            [&format!("o.csv{suffix}"), "song.wav"]
        );
        fs::remove_file(&side).unwrap();
        // The input by its own name, a side file a symlink to it.
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&song, &side).unwrap();
            let mut args = vec![song.as_os_str(), os("--out"), out.as_os_str()];
            args.extend(flags.iter().map(|f| os(f)));
            assert_refused(&args, &side, "it is one of this run's input files");
            assert_eq!(fs::read(&song).unwrap(), bytes, "{suffix}");
            fs::remove_file(&side).unwrap();
        }
    }
    assert_eq!(names_in(dir.path()), ["song.wav"]);
}

/// A side file of `--out` that cannot be written (a folder, a FIFO, a symlink to
/// `/dev/null`) is refused before anything is written: the CSV of an earlier run at that
/// path keeps every byte, and so do its other side files.
#[cfg(unix)]
#[test]
fn a_refused_side_file_leaves_the_earlier_out_whole() {
    let (dir, song) = click_file("song.wav", 120.0, 4.0);
    let out = dir.path().join("b.csv");
    let earlier = analyze_to(&[song.as_os_str(), os("--out"), out.as_os_str()], &out);
    let earlier = String::from_utf8(earlier).unwrap();
    assert_eq!(rows(earlier.as_bytes()).len(), 1);
    let settings = dir.path().join("b.csv.settings.json");
    let identities = dir.path().join("b.csv.identities.csv");
    let kept = |path: &Path| fs::read(path).unwrap();
    let (settings_bytes, identities_bytes) = (kept(&settings), kept(&identities));
    for (side, what) in [
        (&identities, "a directory"),
        (&settings, "a directory"),
        (&identities, "a FIFO"),
        (&identities, "a symlink to a character device"),
    ] {
        let aside = side.with_extension("aside");
        fs::rename(side, &aside).unwrap();
        match what {
            "a directory" => fs::create_dir(side).unwrap(),
            "a FIFO" => drop(fifo(side)),
            _ => std::os::unix::fs::symlink("/dev/null", side).unwrap(),
        }
        let args = [song.as_os_str(), os("--out"), out.as_os_str()];
        assert_refused(&args, side, &format!("it is {what}"));
        assert_eq!(fs::read_to_string(&out).unwrap(), earlier, "{what}");
        assert!(!dir.path().join("b.csv.lock").exists());
        match fs::symlink_metadata(side).unwrap().is_dir() {
            true => fs::remove_dir(side).unwrap(),
            false => fs::remove_file(side).unwrap(),
        }
        fs::rename(&aside, side).unwrap();
    }
    assert_eq!(kept(&settings), settings_bytes);
    assert_eq!(kept(&identities), identities_bytes);
}

/// A symlink to a regular file is followed: its target gets the rows (and the side files
/// sit beside the target), and the link stays a link.
#[cfg(unix)]
#[test]
fn a_symlink_to_a_regular_file_writes_its_target() {
    let (dir, song) = click_file("song.wav", 120.0, 4.0);
    let direct = dir.path().join("direct.csv");
    let result = analyze(&[song.as_os_str(), os("--out"), direct.as_os_str()]);
    assert_eq!(result.status.code(), Some(0), "{result:?}");
    let results = dir.path().join("results");
    fs::create_dir(&results).unwrap();
    let target = results.join("real.csv");
    fs::write(&target, "old").unwrap();
    let link = dir.path().join("link.csv");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let result = analyze(&[song.as_os_str(), os("--out"), link.as_os_str()]);
    assert_eq!(result.status.code(), Some(0), "{result:?}");
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read(&target).unwrap(), fs::read(&direct).unwrap());
    assert_eq!(
        names_in(&results),
        [
            "real.csv",
            "real.csv.identities.csv",
            "real.csv.settings.json"
        ]
    );
}

/// A report folder of evaluate or compare (its marker there) is theirs: `analyze --out
/// REPORT/results.csv` is refused, the folder left as it was (a run writing the report
/// replaced the rows, and both exited 0).
#[test]
fn analyze_refuses_to_write_into_a_report_folder() {
    let (dir, song) = click_file("song.wav", 120.0, 4.0);
    let report = dir.path().join("report");
    fs::create_dir(&report).unwrap();
    fs::write(report.join(".eval-cli-report"), "a report\n").unwrap();
    let out = report.join("results.csv");
    let result = analyze(&[song.as_os_str(), os("--out"), out.as_os_str()]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("its folder is a report of evaluate or compare"),
        "{stderr}"
    );
    assert_eq!(fs::read_dir(&report).unwrap().count(), 1);
}

/// While one run holds `OUT.lock`, a second writer on OUT is refused at once, OUT
/// untouched; once the lock is free the run goes through and leaves no lock file.
#[test]
fn a_second_writer_on_one_out_is_refused() {
    let (dir, song) = click_file("song.wav", 120.0, 4.0);
    let out = dir.path().join("out.csv");
    fs::write(&out, "earlier rows").unwrap();
    let holder = fs::File::create(dir.path().join("out.csv.lock")).unwrap();
    holder.try_lock().unwrap();
    let result = analyze(&[song.as_os_str(), os("--out"), out.as_os_str()]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("out.csv is being written by another run"),
        "{stderr}"
    );
    assert_eq!(fs::read(&out).unwrap(), b"earlier rows");
    drop(holder);
    let result = analyze(&[song.as_os_str(), os("--out"), out.as_os_str()]);
    assert_eq!(result.status.code(), Some(0), "{result:?}");
    assert_eq!(rows(&fs::read(&out).unwrap()).len(), 1);
    assert_eq!(
        names_in(dir.path()),
        [
            "out.csv",
            "out.csv.identities.csv",
            "out.csv.settings.json",
            "song.wav"
        ]
    );
}

/// `--resume` without `--shard` refuses rows made with other settings (naming both), and
/// rows with no record of their settings; with the same settings it goes on.
#[test]
fn resume_with_other_settings_is_refused() {
    let (dir, lib, out) = click_library(&[(os("a-150.wav"), 150.0), (os("b-150.wav"), 150.0)]);
    let narrow = [
        lib.as_os_str(),
        os("--out"),
        out.as_os_str(),
        os("--max-bpm"),
        os("100"),
    ];
    let complete = analyze_to(&narrow, &out);
    // As if killed after the first row.
    let cut = first_rows(&complete, 1);
    fs::write(&out, cut).unwrap();
    let result = analyze(&[
        lib.as_os_str(),
        os("--out"),
        out.as_os_str(),
        os("--resume"),
    ]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("other settings") && stderr.matches("; bpm 50-").count() == 2,
        "{stderr}"
    );
    assert_eq!(stderr.matches("; bpm 50-100;").count(), 1, "{stderr}");
    assert_eq!(fs::read(&out).unwrap(), cut);

    let mut resumed = narrow.to_vec();
    resumed.push(os("--resume"));
    let result = analyze(&resumed);
    assert_eq!(result.status.code(), Some(0), "{result:?}");
    assert_eq!(fs::read(&out).unwrap(), complete);

    fs::remove_file(dir.path().join("out.csv.settings.json")).unwrap();
    let result = analyze(&resumed);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("out.csv.settings.json"), "{stderr}");
}

/// A file that ran out of time can be given more: `--resume` with a longer `--timeout`, or
/// none, analyses the timed-out files again and keeps the rest (it was refused as other
/// settings); a shorter limit is refused and the file kept, since a kept row could be of
/// a file it cuts.
#[test]
fn resume_with_a_longer_time_limit_analyses_the_timed_out_files_again() {
    let (_dir, lib, out) = click_library(&[(os("a-150.wav"), 150.0), (os("b-120.wav"), 120.0)]);
    let complete = analyze_to(&[lib.as_os_str(), os("--out"), out.as_os_str()], &out);
    // A one-nanosecond deadline has passed by the first check: every row is `timeout`.
    let result = analyze(&[
        lib.as_os_str(),
        os("--out"),
        out.as_os_str(),
        os("--timeout"),
        os("0.000000001"),
    ]);
    assert_eq!(result.status.code(), Some(1), "{result:?}");
    let timed_out = fs::read(&out).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&timed_out)
            .matches(",timeout,")
            .count(),
        2
    );
    let resume = |timeout: Option<&str>| {
        let mut args = vec![
            lib.as_os_str(),
            os("--out"),
            out.as_os_str(),
            os("--resume"),
        ];
        if let Some(t) = timeout {
            args.extend([os("--timeout"), os(t)]);
        }
        analyze(&args)
    };
    let result = resume(Some("3600"));
    assert_eq!(result.status.code(), Some(0), "{result:?}");
    assert_eq!(fs::read(&out).unwrap(), complete);
    let result = resume(Some("1800"));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("a time limit of 3600s") && stderr.contains("--timeout 3600 or more"),
        "{stderr}"
    );
    assert_eq!(fs::read(&out).unwrap(), complete);
    let result = resume(None);
    assert_eq!(result.status.code(), Some(0), "{result:?}");
    assert_eq!(fs::read(&out).unwrap(), complete);
}

/// A kept row is byte for byte one this program writes: a row with a byte flipped (on disk,
/// or by hand) was kept, and the resumed file differed from a fresh run's; its file is now
/// analysed again. A resume refused for a malformed row leaves the file as it was (a cut
/// last row was trimmed off first).
#[test]
fn resume_analyses_again_a_damaged_row_and_a_refusal_changes_nothing() {
    let (_dir, lib, out) = click_library(&[
        (os("a-150.wav"), 150.0),
        (os("b-120.wav"), 120.0),
        (os("c-100.wav"), 100.0),
    ]);
    let args = [lib.as_os_str(), os("--out"), out.as_os_str()];
    let complete = analyze_to(&args, &out);
    let resumed: Vec<&OsStr> = args.iter().copied().chain([os("--resume")]).collect();
    // Row 1 with a byte that is not UTF-8 in its codec cell, row 3 cut by a kill.
    let mut damaged = first_rows(&complete, 3)[..complete.len() - 20].to_vec();
    let codec = damaged.windows(9).position(|w| w == b"pcm_s16le").unwrap();
    damaged[codec + 3] = 0xFF;
    fs::write(&out, &damaged).unwrap();
    let result = analyze(&resumed);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("1 row not as this program writes them"),
        "{stderr}"
    );
    assert_eq!(fs::read(&out).unwrap(), complete);

    // Row 2 short of a cell, row 3 cut: refused, not a byte changed.
    let mut malformed = first_rows(&complete, 1).to_vec();
    let row2 = &first_rows(&complete, 2)[malformed.len()..];
    malformed.extend_from_slice(&row2[..row2.len() - 2]);
    malformed.extend_from_slice(b"\n");
    malformed.extend_from_slice(&complete[first_rows(&complete, 2).len()..complete.len() - 20]);
    fs::write(&out, &malformed).unwrap();
    let result = analyze(&resumed);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("row 2"), "{stderr}");
    assert_eq!(fs::read(&out).unwrap(), malformed);
}

/// `--resume` with another input list, or the same folder spelled otherwise, is refused
/// and the file kept: finishing would have dropped the rows of the files not listed (3 of
/// 4 rows vanished, exit 0). The rows of files that no longer exist are dropped, said on
/// stderr. A file whose lines end in CRLF is refused naming the cause (it was read as a
/// cut row and started afresh).
#[test]
fn resume_refuses_rows_it_would_drop_and_crlf_lines() {
    let (dir, lib, out) = click_library(&[(os("a-150.wav"), 150.0), (os("b-100.wav"), 100.0)]);
    let complete = analyze_to(&[lib.as_os_str(), os("--out"), out.as_os_str()], &out);
    let resume = |input: &Path| {
        let result = analyze(&[
            input.as_os_str(),
            os("--out"),
            out.as_os_str(),
            os("--resume"),
        ]);
        let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
        (result.status.code(), stderr)
    };
    let refused = |input: &Path, says: &str| {
        let (code, stderr) = resume(input);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        assert_eq!(fs::read(&out).unwrap(), complete);
    };
    refused(
        &lib.join("a-150.wav"),
        "rows of 1 file this run does not list",
    );
    #[cfg(unix)]
    {
        let spelled = dir.path().join("link");
        std::os::unix::fs::symlink(&lib, &spelled).unwrap();
        refused(&spelled, "rows of 2 files this run does not list");
    }

    fs::remove_file(lib.join("b-100.wav")).unwrap();
    let (code, stderr) = resume(&lib);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("dropping the rows of 1 file that no longer exists"),
        "{stderr}"
    );
    assert_eq!(fs::read(&out).unwrap(), first_rows(&complete, 1));

    let crlf: Vec<u8> = String::from_utf8(fs::read(&out).unwrap())
        .unwrap()
        .replace('\n', "\r\n")
        .into_bytes();
    fs::write(&out, &crlf).unwrap();
    let (code, stderr) = resume(&lib);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("CRLF"), "{stderr}");
    assert_eq!(fs::read(&out).unwrap(), crlf);
}

/// A row that says nothing of its file's content (it could not be read: a folder moved
/// away for a moment after its identity was taken, a share that dropped) is tried again by
/// `--resume`, which then gives the bytes of a fresh run; it was kept (its identity still
/// held), so the file stayed an error row.
#[test]
fn resume_tries_again_a_file_that_could_not_be_read() {
    let (dir, lib, out) = click_library(&[(os("a-150.wav"), 150.0), (os("b-100.wav"), 100.0)]);
    let args = [lib.as_os_str(), os("--out"), out.as_os_str()];
    let complete = analyze_to(&args, &out);
    // b's row as a run gives it when the file cannot be opened, put in place of its own:
    // the identity logged with it is the file's, as when the folder came back.
    let b = lib.join("b-100.wav");
    let away = dir.path().join("away.wav");
    fs::rename(&b, &away).unwrap();
    let lone = dir.path().join("lone.csv");
    analyze(&[b.as_os_str(), os("--out"), lone.as_os_str()]);
    fs::rename(&away, &b).unwrap();
    let unreadable = fs::read_to_string(&lone)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    assert!(unreadable.contains("open: unreadable"), "{unreadable}");
    let edited: Vec<String> = String::from_utf8(complete.clone())
        .unwrap()
        .lines()
        .map(|l| {
            if l.starts_with(unreadable.split(',').next().unwrap()) {
                unreadable.clone()
            } else {
                l.to_string()
            }
        })
        .collect();
    fs::write(&out, edited.join("\n") + "\n").unwrap();
    identities_taken_an_hour_on(&out);
    let mut resumed = args.to_vec();
    resumed.push(os("--resume"));
    let result = analyze(&resumed);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("1 row of files that could not be read"),
        "{stderr}"
    );
    assert_eq!(fs::read(&out).unwrap(), complete);
}

/// A run that cannot write its CSV, identity log or settings (here: each is a running
/// program, which not even root may open for writing) fails before it touches any file:
/// the settings, the rows and their identities stay as they were. It replaced the settings
/// first, and a `--resume` with the new settings then kept rows made with the old ones.
#[cfg(target_os = "linux")]
#[test]
fn a_run_that_cannot_write_its_files_leaves_the_earlier_ones_as_they_were() {
    let (dir, lib, out) = click_library(&[(os("a-150.wav"), 150.0)]);
    analyze_to(&[lib.as_os_str(), os("--out"), out.as_os_str()], &out);
    let side = |suffix: &str| dir.path().join(format!("out.csv{suffix}"));
    for busy in [side(".identities.csv"), side(".settings.json"), out.clone()] {
        let before: Vec<Vec<u8>> = [out.clone(), side(".settings.json"), side(".identities.csv")]
            .iter()
            .map(|f| fs::read(f).unwrap())
            .collect();
        let kept = fs::read(&busy).unwrap();
        let running = RunningProgram::at(&busy);
        let result = analyze(&[
            lib.as_os_str(),
            os("--out"),
            out.as_os_str(),
            os("--min-bpm"),
            os("100"),
            os("--max-bpm"),
            os("140"),
        ]);
        drop(running);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(2), "{stderr}");
        let still_busy = fs::read(&busy).unwrap() == fs::read("/bin/sleep").unwrap();
        fs::write(&busy, kept).unwrap();
        let after: Vec<Vec<u8>> = [out.clone(), side(".settings.json"), side(".identities.csv")]
            .iter()
            .map(|f| fs::read(f).unwrap())
            .collect();
        assert!(
            still_busy && after == before,
            "{}: a file changed",
            busy.display()
        );
        let says = format!("cannot write {}: ", busy.display());
        assert!(stderr.contains(&says), "{stderr}");
    }
}

/// A run killed while its last row was being written, just after a newline inside a
/// quoted name, resumes: the cut row is dropped and analysed again.
#[cfg(unix)]
#[test]
fn resume_after_a_row_cut_inside_a_quoted_name() {
    let (_dir, lib, out) =
        click_library(&[(os("a-120.wav"), 120.0), (os("b\nline-100.wav"), 100.0)]);
    let args = [lib.as_os_str(), os("--out"), out.as_os_str()];
    let complete = analyze_to(&args, &out);
    let quoted = complete.windows(3).position(|w| w == b"b\nl").unwrap();
    fs::write(&out, &complete[..quoted + 2]).unwrap();
    identities_taken_an_hour_on(&out);
    assert_eq!(
        resume_to(&args, &out, &complete),
        1,
        "only the cut row's file is analysed again"
    );
}

/// Two Latin-1 names that differ in one byte (0xE9, 0xE8) get distinct, exact cells, and
/// `--resume` gives each file its own row, never the other's.
#[cfg(unix)]
#[test]
fn latin1_names_get_distinct_cells_and_their_own_rows_on_resume() {
    let (_dir, lib, out) = click_library(&latin1_pair());
    let args = [lib.as_os_str(), os("--out"), out.as_os_str()];
    let complete = analyze_to(&args, &out);
    let table = rows(&complete);
    assert_eq!([&table[0][0], &table[1][0]], latin1_cells(&lib).each_ref());
    let bpm = |row: &[String]| row[1].parse::<f64>().unwrap();
    assert!((bpm(&table[0]) - 100.0).abs() < 2.0, "{table:?}");
    assert!((bpm(&table[1]) - 150.0).abs() < 3.0, "{table:?}");

    // Keep only the 0xE8 row: the 0xE9 file must be analysed again, not given that row.
    fs::write(&out, first_rows(&complete, 1)).unwrap();
    identities_taken_an_hour_on(&out);
    assert_eq!(resume_to(&args, &out, &complete), 1);
}

/// A file rewritten between a run that was stopped and its `--resume` is analysed again:
/// the resumed CSV holds the bytes of a fresh run on the library as it is now, not the
/// row of the audio the file held before. The other finished rows are kept unread.
#[test]
fn resume_analyses_again_a_file_changed_since_its_row() {
    let dir = tempfile::tempdir().unwrap();
    let (lib, out) = stopped_after_two_of_three(dir.path());
    let args = [lib.as_os_str(), os("--out"), out.as_os_str()];
    // Then a.wav is rewritten with other audio.
    click_wav(&lib.join("a.wav"), 90.0, 7.0);

    let complete = fresh_csv(dir.path(), &lib);
    // a.wav again (changed), c.wav (never done); b.wav's row is kept.
    assert_eq!(resume_to(&args, &out, &complete), 2);
}

/// "Racy clean": a file rewritten within the timestamp tick in which its identity was
/// taken can keep that identity (size, mtime, ctime, inode) with other bytes. `--resume`
/// does not trust such an identity, as the cache does not: the file is analysed again.
/// The tick is not waited for: the log is given what such a rewrite would leave, the
/// file's identity after the rewrite with the moment logged before it.
#[test]
fn resume_analyses_again_a_file_rewritten_within_the_tick_of_its_identity() {
    let dir = tempfile::tempdir().unwrap();
    let (lib, out) = stopped_after_two_of_three(dir.path());
    let args = [lib.as_os_str(), os("--out"), out.as_os_str()];
    // a.wav gets other audio of the same length and size; its logged identity becomes
    // the one it has now, and its moment one from before the rewrite: what a rewrite in
    // the same tick as the identity leaves.
    let before_rewrite = std::time::SystemTime::now();
    let size = fs::metadata(lib.join("a.wav")).unwrap().len();
    click_wav(&lib.join("a.wav"), 90.0, 6.0);
    assert_eq!(fs::metadata(lib.join("a.wav")).unwrap().len(), size);
    let a_now = eval_cli::cache::FileIdentity::of_path(&lib.join("a.wav")).unwrap();
    let a_cell = lib.join("a.wav").to_str().unwrap().to_string();
    edit_identity_log(&out, |cells| {
        if cells[0] == a_cell {
            cells[1] = a_now.to_string();
            if let Some(at) = cells.get_mut(2) {
                *at = eval_cli::cache::nanos_of(before_rewrite).to_string();
            }
        }
    });

    let complete = fresh_csv(dir.path(), &lib);
    // a.wav again (racy), c.wav (never done); b.wav's row is kept.
    assert_eq!(resume_to(&args, &out, &complete), 2);
}

/// A panic the batch catches (here one `--test-panics` asks for) is the file's error row
/// and one line on stderr naming the file and the message, even with `RUST_BACKTRACE`
/// set: no default panic report, which names a thread and a source line but not the file.
#[test]
fn a_caught_panic_is_one_stderr_line_naming_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    fs::create_dir(&lib).unwrap();
    click_wav(&lib.join("a.wav"), 120.0, 4.0);
    click_wav(&lib.join("panic-b.wav"), 120.0, 4.0);
    let result = eval_cli()
        .arg("analyze")
        .arg(&lib)
        .args(["--test-panics", "--workers", "2", "--progress", "off"])
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(1), "{stderr}");
    let table = rows(&result.stdout);
    let cell = lib.join("panic-b.wav").to_str().unwrap().to_string();
    let row = table.iter().find(|r| r[0] == cell).unwrap();
    assert_eq!(
        (row[9].as_str(), row[10].as_str()),
        ("error", "panic: asked for by --test-panics")
    );
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [format!(
            "eval-cli: error: {cell}: panic: asked for by --test-panics"
        )],
        "one line, no default report"
    );
}

/// Rows that cannot reach stdout (a full disk behind `> FILE`; here `/dev/full`) stop the
/// run with exit 2 and an error that says what was being written: it was the bare
/// "No space left on device" before. `tag` stops before it tags anything.
#[cfg(target_os = "linux")]
#[test]
fn stdout_that_cannot_be_written_is_named() {
    let (_dir, wav) = click_file("a.wav", 120.0, 4.0);
    for (command, said) in [
        (
            &["analyze"][..],
            "eval-cli: error: cannot write results to stdout: ",
        ),
        (
            &["tag"][..],
            "eval-cli: error: cannot write the rows to stdout: ",
        ),
    ] {
        let before = fs::read(&wav).unwrap();
        let result = eval_cli_process()
            .args(command)
            .arg(&wav)
            .args(["--progress", "off"])
            .stdout(fs::File::create("/dev/full").unwrap())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(2), "{command:?}: {stderr}");
        assert!(stderr.starts_with(said), "{command:?}: {stderr}");
        assert_eq!(
            fs::read(&wav).unwrap(),
            before,
            "{command:?} changed the file"
        );
    }
}

/// A reader that closes stdout early (`eval-cli analyze DIR | head -0`) ends the run
/// quietly with exit 0, as ripgrep and the Unix tools end: it exited 2 with "Broken pipe".
/// The pipe's reading end is closed before the process starts, so its first write fails
/// whatever the timing. `tag` ends the same way, before it tags anything.
#[cfg(unix)]
#[test]
fn a_closed_stdout_pipe_ends_the_run_quietly() {
    let (dir, lib, _out) = click_library(&[(os("a.wav"), 120.0), (os("b.wav"), 90.0)]);
    for command in [&["analyze"][..], &["tag", "--dry-run"]] {
        let before = fs::read(lib.join("a.wav")).unwrap();
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let result = eval_cli_process()
            .args(command)
            .arg(&lib)
            .args(["--progress", "off"])
            .current_dir(dir.path())
            .stdout(writer)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(0), "{command:?}: {stderr}");
        assert_eq!(stderr, "", "{command:?}: nothing to say");
        assert_eq!(fs::read(lib.join("a.wav")).unwrap(), before, "{command:?}");
    }
}
