//! What every module of the suite shares, once: the CLI runner, the click tracks the
//! tests analyse, named pipes, the CSV readers, and (in `broker` and `service`) the
//! `redis-server` and `eval-cli serve` a test starts and stops.

pub mod broker;
pub mod events;
pub mod rabbit;
pub mod service;

use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Output};

use assert_cmd::Command;

/// The sample rate of every synthetic track.
pub const RATE: u32 = 22_050;

/// The header of `analyze`'s CSV, written out here so that a change to it fails a test.
pub const HEADER: &str = "path,bpm,confidence,alt_bpm,alt_share,duration_s,sample_rate,channels,codec,status,error,\
     key,key_confidence,key_alt,camelot,loudness_lufs,loudness_range_lu,true_peak_dbtp,replaygain_track_gain_db,\
     replaygain_track_peak,replaygain_album_gain_db,replaygain_album_peak";

/// `eval-cli` as `assert_cmd` runs it.
pub fn eval_cli() -> Command {
    Command::cargo_bin("eval-cli").unwrap()
}

/// `eval-cli` as a plain process, for children a test spawns and watches.
pub fn eval_cli_process() -> Process {
    Process::new(env!("CARGO_BIN_EXE_eval-cli"))
}

/// `eval-cli dataset synth` of `count` tracks of `seconds` into `out`, which must succeed.
pub fn synth_set(out: &Path, count: usize, seconds: f64) {
    eval_cli()
        .args(["dataset", "synth", "--count", &count.to_string()])
        .args(["--seconds", &seconds.to_string(), "--out"])
        .arg(out)
        .assert()
        .success();
}

/// A temporary folder holding `set/`, a synthetic set of `count` 8-s tracks with its
/// manifest.
pub fn synth_folder(count: usize) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("set");
    synth_set(&set, count, 8.0);
    (dir, set)
}

/// `compare`'s flags for one quick run at 1 and 2 workers: no warm-up, one repeat.
pub const QUICK_COMPARE: [&str; 6] = ["--workers", "1,2", "--repeat", "1", "--warmup", "0"];

/// Whether every worker count of a `compare.json` gave the 1-worker bytes.
pub fn all_runs_identical(compare: &serde_json::Value) -> bool {
    let runs = compare["runs"].as_array().expect("compare.json has runs");
    runs.iter().all(|r| r["identical"] == true)
}

/// `s` as an argument beside paths.
pub fn os(s: &str) -> &OsStr {
    s.as_ref()
}

/// `p` as an argument beside flags (the tests' paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Fails the test, with the command's stderr, unless `output` is a success.
pub fn assert_ok(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({:?}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `eval-cli analyze PATHS FLAGS`, run to its end.
pub fn analyze(flags: &[&str], paths: &[&Path]) -> Output {
    eval_cli()
        .arg("analyze")
        .args(paths)
        .args(flags)
        .output()
        .unwrap()
}

/// The stdout of `eval-cli analyze PATHS` (exit 0, or 1 where a file fails).
pub fn analyze_bytes(paths: &[&Path]) -> Vec<u8> {
    let out = analyze(&[], paths);
    assert!(out.status.code().is_some_and(|c| c <= 1), "{out:?}");
    out.stdout
}

/// A mono 16-bit WAV at [`RATE`] holding `samples`.
pub fn pcm16_wav(samples: impl IntoIterator<Item = i16>) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut cursor = std::io::Cursor::new(Vec::new());
    let mut writer = hound::WavWriter::new(&mut cursor, spec).unwrap();
    for sample in samples {
        writer.write_sample(sample).unwrap();
    }
    writer.finalize().unwrap();
    cursor.into_inner()
}

/// `seconds` of a 1 kHz sine peaking at `dbfs` on both channels of a 16-bit 48 kHz stereo
/// WAV, on for 200 ms and off for 200 ms: a pulse at 150 BPM for the tempo, and every 400 ms
/// gating block of EBU R128 holds one period, so the file reads `dbfs` - 3.01 LUFS.
pub fn pulsed_sine_wav(path: &Path, dbfs: f64, seconds: f64) {
    let rate = 48_000;
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let amplitude = 10f64.powf(dbfs / 20.0) * 32_767.0;
    let period = rate as usize * 2 / 5;
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..(seconds * f64::from(rate)) as usize {
        let on = i % period < period / 2;
        let phase = 2.0 * std::f64::consts::PI * 1000.0 * i as f64 / f64::from(rate);
        let sample = if on {
            (amplitude * phase.sin()).round() as i16
        } else {
            0
        };
        writer.write_sample(sample).unwrap();
        writer.write_sample(sample).unwrap();
    }
    writer.finalize().unwrap();
}

/// A mono 16-bit WAV of short square-wave clicks at `bpm`.
pub fn click_wav_bytes(bpm: f64, seconds: f64) -> Vec<u8> {
    let clicks = synth_music::presets::clicks(bpm, seconds, RATE);
    pcm16_wav(clicks.into_iter().map(|s| (s * 32_500.0) as i16))
}

/// [`click_wav_bytes`] written to `path`.
pub fn click_wav(path: &Path, bpm: f64, seconds: f64) {
    fs::write(path, click_wav_bytes(bpm, seconds)).unwrap();
}

/// A fresh temporary folder holding one click track `name` (see [`click_wav`]), and the
/// track's path.
pub fn click_file(name: &str, bpm: f64, seconds: f64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    click_wav(&path, bpm, seconds);
    (dir, path)
}

/// Writes a click track under `lib` for each `(name, bpm, seconds)`, its folders made as
/// needed: a FLAC where the name ends in `.flac`, a WAV otherwise. The builders of the
/// modules' libraries choose the names, tempi and lengths their tests rely on.
pub fn write_tracks<N: AsRef<Path>>(lib: &Path, tracks: impl IntoIterator<Item = (N, f64, f64)>) {
    for (name, bpm, seconds) in tracks {
        let path = lib.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        if path.extension() == Some(OsStr::new("flac")) {
            click_flac(&path, bpm, seconds);
        } else {
            click_wav(&path, bpm, seconds);
        }
    }
}

/// `dir/lib`, holding a click track of `seconds` for each `(name, bpm)`.
pub fn click_folder(dir: &Path, tracks: &[(&OsStr, f64)], seconds: f64) -> PathBuf {
    let lib = dir.join("lib");
    fs::create_dir(&lib).unwrap();
    write_tracks(&lib, tracks.iter().map(|(name, bpm)| (name, *bpm, seconds)));
    lib
}

/// A temporary folder with `lib/` holding a 4-s click track for each `(name, bpm)`, and
/// the path of an `out.csv` beside it (not yet written).
pub fn click_library(tracks: &[(&OsStr, f64)]) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let lib = click_folder(dir.path(), tracks, 4.0);
    let out = dir.path().join("out.csv");
    (dir, lib, out)
}

/// Two Latin-1 names that differ in one byte, 0xE9 (150 BPM) and 0xE8 (100 BPM): their
/// rows must never be confused.
#[cfg(unix)]
pub fn latin1_pair() -> [(&'static OsStr, f64); 2] {
    use std::os::unix::ffi::OsStrExt;
    [
        (OsStr::from_bytes(b"caf\xe9.wav"), 150.0),
        (OsStr::from_bytes(b"caf\xe8.wav"), 100.0),
    ]
}

/// The path cells of the [`latin1_pair`] in `lib`, in input order: each byte past ASCII
/// written as `\xHH`, so that the two never share a cell.
#[cfg(unix)]
pub fn latin1_cells(lib: &Path) -> [String; 2] {
    let lib = s(lib);
    [format!("{lib}/caf\\xE8.wav"), format!("{lib}/caf\\xE9.wav")]
}

/// The same clicks as a mono FLAC at `path`.
pub fn click_flac(path: &Path, bpm: f64, seconds: f64) {
    let clicks = synth_music::presets::clicks(bpm, seconds, RATE);
    synth_music::write_flac(path, &clicks, RATE, 1).unwrap();
}

/// A named pipe at `path`: a reader of it blocks until someone writes.
pub fn fifo(path: &Path) -> PathBuf {
    let made = Process::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
    path.to_path_buf()
}

/// A running copy of `sleep` at `path`: a file that not even root may open for writing
/// while it runs (ETXTBSY), which a read-only mode cannot give a suite run as root. The
/// program is ended when this is dropped, so a failed assertion leaves none behind.
#[cfg(target_os = "linux")]
pub struct RunningProgram(std::process::Child);

#[cfg(target_os = "linux")]
impl RunningProgram {
    /// Copies `/bin/sleep` to `path` and starts it.
    pub fn at(path: &Path) -> Self {
        fs::copy("/bin/sleep", path).unwrap();
        // A test thread that forks while the copy is still open for writing hands that
        // descriptor to its child until the child execs: for that moment, starting the
        // copy is refused as busy.
        for _ in 0..100_000 {
            match Process::new(path).arg("600").spawn() {
                Ok(child) => return RunningProgram(child),
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                    std::thread::yield_now();
                }
                Err(e) => panic!("cannot start {}: {e}", path.display()),
            }
        }
        panic!("{} stayed busy", path.display());
    }
}

#[cfg(target_os = "linux")]
impl Drop for RunningProgram {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads `log` until a line contains `needle` (true) or the log ends (false), then keeps
/// draining it on a thread so that its writer never blocks on a full pipe. No clock.
pub fn wait_for_line(log: impl Read + Send + 'static, needle: &str) -> bool {
    let mut lines = BufReader::new(log).lines();
    let found = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains(needle));
    std::thread::spawn(move || lines.for_each(drop));
    found
}

/// The rows of `analyze`'s CSV (its header checked), as cells.
pub fn rows(csv_bytes: &[u8]) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new().from_reader(csv_bytes);
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header.join(","), HEADER);
    reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect()
}

/// The first cell of every row of `analyze`'s CSV.
pub fn paths(csv_bytes: &[u8]) -> Vec<String> {
    rows(csv_bytes)
        .into_iter()
        .map(|mut r| r.remove(0))
        .collect()
}

/// The lines after the header, as they are.
pub fn csv_lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .lines()
        .skip(1)
        .map(String::from)
        .collect()
}

/// Rewrites each line of `OUT.identities.csv` (the identity log `analyze --out OUT` keeps
/// for `--resume`) through `edit`, which gets its cells: path, identity and, where the log
/// has them, the moment the identity was taken (nanoseconds since the epoch).
pub fn edit_identity_log(out: &Path, mut edit: impl FnMut(&mut Vec<String>)) {
    let mut log = out.as_os_str().to_owned();
    log.push(".identities.csv");
    let bytes = fs::read(&log).unwrap();
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(&bytes[..]);
    let mut writer = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(Vec::new());
    writer.write_record(reader.headers().unwrap()).unwrap();
    for record in reader.records() {
        let mut cells: Vec<String> = record.unwrap().iter().map(String::from).collect();
        edit(&mut cells);
        writer.write_record(&cells).unwrap();
    }
    fs::write(&log, writer.into_inner().unwrap()).unwrap();
}

/// Moves every moment in `OUT.identities.csv` an hour on, as if each identity had been
/// taken an hour after the test wrote its file: `--resume` then trusts every file that
/// still has its identity. (A file written within a timestamp tick of the moment its
/// identity was taken is analysed again; the test's files are all that new.)
pub fn identities_taken_an_hour_on(out: &Path) {
    edit_identity_log(out, |cells| {
        if let Some(at) = cells.get_mut(2) {
            *at = (at.parse::<i128>().unwrap() + 3_600_000_000_000).to_string();
        }
    });
}
