//! Datasets with known tempi or keys: what `--dataset` names, read into one list of items.
//!
//! Three forms are accepted, so that common public sets work as downloaded:
//! - a manifest CSV with a header, a `file` column and at least one truth column, `bpm`
//!   or `key` (`file` relative to the manifest's folder, its cell the name exactly, spaces
//!   included, while the header and other cells are trimmed; every other column is kept as
//!   metadata, e.g. `source`, `genre`). An empty truth cell means no truth of that kind
//!   for that file; a row with no truth at all, a `bpm` that is not a positive number (up
//!   to 1000), a `key` that is not a key (`C# minor`, `Dbm`, `12A`, `C:min`...) or a file
//!   listed a second time is an error naming the manifest and the line;
//! - a folder: its `manifest.csv` if there is one, otherwise every audio file under it that
//!   has an annotation with the same stem: a GiantSteps-style `.bpm` text file (beside the
//!   audio, or anywhere under the folder such as `annotations/tempo/NAME.bpm`), or a JAMS file
//!   whose first `tempo` annotation gives `data[0].value` and whose first `key_mode`
//!   annotation gives the key (`A:minor`; the one held longest), and/or a GiantSteps Key-style
//!   `.key` text file (`annotations/key/NAME.key` holding `Eb minor`); one beside the audio
//!   is that file's alone (see [`scan_folder`]);
//! - `synth`: the built-in synthetic set, generated once into a cache folder.
//!
//! A listed file that does not exist is not an error here: it becomes a failed row when the
//! analyzer cannot open it. A manifest that cannot be read, lacks `file`, or has neither
//! `bpm` nor `key` is an error naming the file. The manifest and annotation files are read
//! only as regular files ([`crate::input::read_regular`]): a named pipe, a device or a link
//! to one is an error naming it and what it is, never waited on nor read without end, and
//! so is a manifest over 1 GiB or an annotation over 64 MiB.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use analyzer_core::batch::spelled_alike;
use analyzer_core::key::Key;
use anyhow::{Context, bail};

use crate::file_id::FileId;
use crate::input::{MAX_TABLE_BYTES, read_regular};

mod scan;
mod synth_cache;

pub use scan::{read_bpm_file, read_jams, read_key_file, scan_folder};
pub use synth_cache::synth_cache;

/// One track with its true tempo, its true key, or both.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The file as the dataset names it (relative to the dataset folder), used in results:
    /// a manifest's cell, or for a scanned folder the path's [`crate::path_cell::path_cell`].
    pub file: String,
    /// Where the file is on disk.
    pub path: PathBuf,
    /// Ground-truth tempo in BPM; `None` when the dataset gives none for this file (it is
    /// then left out of the tempo metrics).
    pub bpm: Option<f64>,
    /// Ground-truth key; `None` when the dataset gives none for this file (it is then left
    /// out of the key metrics).
    pub key: Option<Key>,
    /// Every other manifest column (or, for scanned folders, `format` and `annotation`).
    pub meta: BTreeMap<String, String>,
}

/// A whole dataset, in a stable order.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// What `--dataset` said, for reports.
    pub label: String,
    /// A path that names the same dataset again (the manifest, the folder, or the generated
    /// synthetic manifest): what child processes are given.
    pub location: PathBuf,
    /// The tracks.
    pub items: Vec<Item>,
    /// Metadata column names, in manifest order.
    pub meta_columns: Vec<String>,
}

impl Dataset {
    /// Whether any item has a true key: what makes a run score keys (the key columns of
    /// results.csv, the `key` object of summary.json).
    pub fn has_key_truth(&self) -> bool {
        self.items.iter().any(|item| item.key.is_some())
    }

    /// Every file the dataset is read from: its location (manifest or folder) and tracks.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        let tracks = self.items.iter().map(|item| item.path.as_path());
        std::iter::once(self.location.as_path()).chain(tracks)
    }
}

/// Tracks in the default synthetic set: 80 of 30 s make one run of the main job's
/// 1-worker measurement last about 2.4 s on a 2-core machine (64 took 1.95 s), so that
/// process start-up is not what `compare` measures (docs/speed.md).
pub const DEFAULT_SYNTH_COUNT: usize = 80;
/// Seconds per track of the default synthetic set.
pub const DEFAULT_SYNTH_SECONDS: f64 = 30.0;

/// Size of the built-in synthetic dataset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthParams {
    /// Number of tracks.
    pub count: usize,
    /// Seconds per track.
    pub seconds: f64,
    /// Seed of the plan.
    pub seed: u64,
}

/// Loads the dataset `spec` names: `synth`, a manifest CSV, or a folder.
pub fn load(spec: &str, synth: SynthParams) -> anyhow::Result<Dataset> {
    if spec == "synth" {
        let dir = synth_cache(synth)?;
        let mut ds = read_manifest(&dir.join(synth_music::MANIFEST_FILE))?;
        ds.label = format!(
            "synth (count {}, {} s, seed {})",
            synth.count, synth.seconds, synth.seed
        );
        return Ok(ds);
    }
    let path = Path::new(spec);
    if path.is_dir() {
        // Anything there but a folder is the manifest: a named pipe or a link to a device
        // is refused naming it ([`read_manifest`]), never taken for no manifest.
        let manifest = path.join("manifest.csv");
        if manifest.exists() && !manifest.is_dir() {
            return read_manifest(&manifest);
        }
        return scan_folder(path);
    }
    read_manifest(path)
}

/// Reads a manifest CSV.
pub fn read_manifest(path: &Path) -> anyhow::Result<Dataset> {
    let bytes = read_regular(path, MAX_TABLE_BYTES, "manifest ")?;
    let root = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    // The header and the other cells are trimmed (`file, bpm`, ` 120`), never `file`: its
    // cell is the name exactly, quoted or not, as a folder scan keeps it (` a.wav` and
    // `a.wav` are two files, and trimming scored the wrong one).
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::Headers)
        .from_reader(bytes.as_slice());
    let headers = reader
        .headers()
        .with_context(|| format!("manifest {}: cannot read the header", path.display()))?
        .clone();
    // A column named twice (`bpm,bpm`, `file,File`) would have one of them read and the
    // other silently ignored, or scored as metadata: which truth counts must not be a guess.
    for (i, name) in headers.iter().enumerate() {
        if let Some(first) = headers
            .iter()
            .take(i)
            .position(|h| h.eq_ignore_ascii_case(name))
        {
            bail!(
                "manifest {}: the header names column {name:?} twice (columns {} and {})",
                path.display(),
                first + 1,
                i + 1
            );
        }
    }
    let find = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (file_col, bpm_col, key_col) = (find("file"), find("bpm"), find("key"));
    let Some(file_col) = file_col.filter(|_| bpm_col.is_some() || key_col.is_some()) else {
        bail!(
            "manifest {}: the header must have a `file` column and a truth column, `bpm` or \
             `key` (found: {})",
            path.display(),
            headers.iter().collect::<Vec<_>>().join(",")
        );
    };
    let is_meta = |i: usize| i != file_col && Some(i) != bpm_col && Some(i) != key_col;
    let meta_columns: Vec<String> = headers
        .iter()
        .enumerate()
        .filter(|&(i, _)| is_meta(i))
        .map(|(_, h)| h.to_string())
        .collect();
    let mut items = Vec::new();
    // Each file once: a file listed twice would count twice in every accuracy (and twice
    // with two truths, one of them wrong).
    let mut seen: std::collections::HashMap<PathBuf, usize> = std::collections::HashMap::new();
    // And by identity: `sub/../a.wav`, an absolute path, a link are the same file too.
    let mut seen_files: std::collections::HashMap<FileId, (usize, String)> =
        std::collections::HashMap::new();
    for (row, record) in reader.records().enumerate() {
        let line = row + 2;
        let record = record.with_context(|| format!("manifest {} line {line}", path.display()))?;
        let at = || format!("manifest {} line {line}", path.display());
        let file = record.get(file_col).unwrap_or("").to_string();
        if file.is_empty() {
            bail!("{}: empty `file`", at());
        }
        // Compared by components, so `./a.wav` and `a.wav` are one file.
        if let Some(first) = seen.insert(spelled_alike(Path::new(&file)), line) {
            bail!("{}: {file:?} is listed again (first on line {first})", at());
        }
        if let Some(id) = FileId::of_file(&root.join(&file)) {
            if let Some((first, name)) = seen_files.get(&id) {
                bail!(
                    "{}: {file:?} is the file {name:?} of line {first} again (another name \
                     for it)",
                    at()
                );
            }
            seen_files.insert(id, (line, file.clone()));
        }
        let cell = |col: Option<usize>| col.and_then(|c| record.get(c)).unwrap_or("").trim();
        let bpm = truth_bpm(cell(bpm_col)).with_context(at)?;
        let key = truth_key(cell(key_col)).with_context(at)?;
        if bpm.is_none() && key.is_none() {
            bail!("{}: no truth (`bpm` and `key` are empty or absent)", at());
        }
        let meta = headers
            .iter()
            .zip(record.iter())
            .enumerate()
            .filter(|&(i, _)| is_meta(i))
            .map(|(_, (h, v))| (h.to_string(), v.trim().to_string()))
            .collect();
        items.push(Item {
            path: root.join(&file),
            file,
            bpm,
            key,
            meta,
        });
    }
    // A header and no rows is a mistake (a cut copy, the wrong file), not a dataset: its
    // report would score nothing and read as accuracy 0 %.
    if items.is_empty() {
        bail!("manifest {}: it lists no files", path.display());
    }
    Ok(Dataset {
        label: path.display().to_string(),
        location: path.to_path_buf(),
        items,
        meta_columns,
    })
}

/// The largest tempo a manifest may state: the analyzer's own ceiling. Past it a truth is
/// a typo, and x2 or x3 of a huge one overflows to infinity (which Accuracy2 then matched).
const MAX_TRUTH_BPM: f64 = 1000.0;

/// A manifest's `bpm` cell: empty is no tempo truth, anything else must be a positive
/// number up to [`MAX_TRUTH_BPM`].
fn truth_bpm(text: &str) -> anyhow::Result<Option<f64>> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .ok()
        .filter(|b: &f64| b.is_finite() && *b > 0.0 && *b <= MAX_TRUTH_BPM)
        .map(Some)
        .with_context(|| format!("`bpm` is {text:?}, not a positive number up to {MAX_TRUTH_BPM}"))
}

/// A manifest's `key` cell: empty is no key truth, anything else must be a key.
fn truth_key(text: &str) -> anyhow::Result<Option<Key>> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|e| anyhow::anyhow!("`key`: {e}"))
}

/// The most tracks a synthetic set may have: its plan is made whole before the first file
/// is written, so a count near `usize::MAX` panicked ("capacity overflow") and a billion
/// aborted on memory. 100 000 tracks of the default 30 s are some 260 GB of audio.
pub const MAX_SYNTH_COUNT: usize = 100_000;

/// The generator's spec of the synthetic set for `params`, to be written into `dir`;
/// refused, naming `dir`, past [`MAX_SYNTH_COUNT`] tracks.
pub fn synth_spec(dir: &Path, params: SynthParams) -> anyhow::Result<synth_music::DatasetSpec> {
    if params.count > MAX_SYNTH_COUNT {
        bail!(
            "cannot write the synthetic dataset to {}: {} tracks is more than the {MAX_SYNTH_COUNT} \
             a synthetic set may have",
            dir.display(),
            params.count
        );
    }
    Ok(synth_music::DatasetSpec::default()
        .with_count(params.count)
        .with_seconds(params.seconds)
        .with_seed(params.seed))
}

/// Writes the synthetic set for `params` into `dir` (audio plus `manifest.csv`).
pub fn write_synth(dir: &Path, params: SynthParams) -> anyhow::Result<usize> {
    let spec = synth_spec(dir, params)?;
    let items = synth_music::write_dataset(dir, &spec)
        .with_context(|| format!("cannot write the synthetic dataset to {}", dir.display()))?;
    Ok(items.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn a_tempo_truth_is_a_positive_number_up_to_the_analyzers_ceiling() {
        assert_eq!(truth_bpm("").unwrap(), None);
        assert_eq!(truth_bpm("128.5").unwrap(), Some(128.5));
        assert_eq!(truth_bpm("1000").unwrap(), Some(1000.0));
        for bad in ["0", "-3", "NaN", "inf", "1e308", "1000.5", "fast"] {
            let err = truth_bpm(bad).unwrap_err().to_string();
            assert!(
                err.contains("not a positive number up to 1000"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn manifest_with_extra_columns_and_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("set.csv");
        fs::write(
            &m,
            "source,file,bpm,genre\nfma,a/x.mp3,120,rock\nown,y.wav,97.5,jazz\n",
        )
        .unwrap();
        let ds = read_manifest(&m).unwrap();
        assert_eq!(ds.meta_columns, ["source", "genre"]);
        assert_eq!(ds.items.len(), 2);
        assert_eq!(ds.items[0].file, "a/x.mp3");
        assert_eq!(ds.items[0].path, dir.path().join("a/x.mp3"));
        assert_eq!(ds.items[1].bpm, Some(97.5));
        assert_eq!(ds.items[1].key, None);
        assert_eq!(ds.items[1].meta["genre"], "jazz");
        assert_eq!(ds.items[1].meta["source"], "own");
    }

    /// The `file` cell is the name exactly, quoted or not (` a.wav` was read as `a.wav`,
    /// another file); the header and the other cells are trimmed as before.
    #[test]
    fn a_file_cell_keeps_its_spaces_and_other_cells_are_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("spaces.csv");
        fs::write(
            &m,
            "file , bpm, key ,genre\n\" a.wav\", 120 ,A minor, rock \n\
             a.wav ,90,,jazz\na.wav,100, Dbm,\n\"  \",80,,\n",
        )
        .unwrap();
        let ds = read_manifest(&m).unwrap();
        let files: Vec<&str> = ds.items.iter().map(|i| i.file.as_str()).collect();
        assert_eq!(files, [" a.wav", "a.wav ", "a.wav", "  "]);
        assert_eq!(ds.items[0].path, dir.path().join(" a.wav"));
        let bpms: Vec<Option<f64>> = ds.items.iter().map(|i| i.bpm).collect();
        assert_eq!(bpms, [Some(120.0), Some(90.0), Some(100.0), Some(80.0)]);
        assert_eq!(ds.items[2].key.unwrap().to_string(), "C# minor");
        assert_eq!(ds.meta_columns, ["genre"]);
        assert_eq!(ds.items[0].meta["genre"], "rock");
    }

    #[test]
    fn manifest_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("nobpm.csv");
        fs::write(&m, "file,tempo\nx.wav,120\n").unwrap();
        let err = format!("{:#}", read_manifest(&m).unwrap_err());
        assert!(err.contains("nobpm.csv") && err.contains("bpm"), "{err}");
        let bad = dir.path().join("bad.csv");
        fs::write(&bad, "file,bpm\nx.wav,fast\n").unwrap();
        let err = format!("{:#}", read_manifest(&bad).unwrap_err());
        assert!(err.contains("bad.csv") && err.contains("line 2"), "{err}");
        let err = format!(
            "{:#}",
            read_manifest(&dir.path().join("missing.csv")).unwrap_err()
        );
        assert!(err.contains("missing.csv"), "{err}");
        // A file listed twice (here once as `./x.wav`) would count twice in every score.
        let twice = dir.path().join("twice.csv");
        fs::write(&twice, "file,bpm\nx.wav,120\ny.wav,90\n./x.wav,60\n").unwrap();
        let err = format!("{:#}", read_manifest(&twice).unwrap_err());
        assert!(
            err.contains("twice.csv line 4") && err.contains("first on line 2"),
            "{err}"
        );
        // So is one under another name: `sub/../x.wav`, an absolute path, a link.
        #[cfg(unix)]
        {
            fs::write(dir.path().join("x.wav"), b"audio").unwrap();
            fs::create_dir(dir.path().join("sub")).unwrap();
            std::os::unix::fs::symlink("x.wav", dir.path().join("link.wav")).unwrap();
            let absolute = dir.path().join("x.wav");
            for other in ["sub/../x.wav", absolute.to_str().unwrap(), "link.wav"] {
                fs::write(&twice, format!("file,bpm\nx.wav,120\n{other},120\n")).unwrap();
                let err = format!("{:#}", read_manifest(&twice).unwrap_err());
                assert!(
                    err.contains("line 3") && err.contains("\"x.wav\" of line 2 again"),
                    "{other}: {err}"
                );
            }
        }
    }

    /// A manifest with no rows, or a column named twice, is refused naming the manifest:
    /// before, the first ran to a report of 0 files (exit 0) and the second read one `bpm`
    /// column and scored the other as metadata.
    #[test]
    fn an_empty_manifest_or_a_column_named_twice_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.csv");
        fs::write(&empty, "file,bpm\r\n").unwrap();
        let err = format!("{:#}", read_manifest(&empty).unwrap_err());
        assert!(err.contains("empty.csv: it lists no files"), "{err}");
        let twice = dir.path().join("twice.csv");
        fs::write(&twice, "file,bpm,BPM\nx.wav,120,60\n").unwrap();
        let err = format!("{:#}", read_manifest(&twice).unwrap_err());
        assert!(
            err.contains("twice.csv: the header names column \"BPM\" twice (columns 2 and 3)"),
            "{err}"
        );
    }

    #[test]
    fn key_truth_with_or_without_tempo() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("keys.csv");
        fs::write(
            &m,
            "file,KEY,source\na.wav,C# minor,x\nb.wav,Dbm,x\nc.wav,12A,y\nd.wav,Bb:maj,y\n",
        )
        .unwrap();
        let ds = read_manifest(&m).unwrap();
        let keys: Vec<String> = ds
            .items
            .iter()
            .map(|i| i.key.unwrap().to_string())
            .collect();
        assert_eq!(keys, ["C# minor", "C# minor", "C# minor", "A# major"]);
        assert!(ds.items.iter().all(|i| i.bpm.is_none()));
        assert_eq!(ds.meta_columns, ["source"]);
        assert!(ds.has_key_truth());

        // Both truths, each cell optional, but a row needs one of them.
        let both = dir.path().join("both.csv");
        fs::write(
            &both,
            "file,bpm,key\na.wav,120,\nb.wav,,A minor\nc.wav,90,E major\n",
        )
        .unwrap();
        let ds = read_manifest(&both).unwrap();
        let got: Vec<(Option<f64>, Option<String>)> = ds
            .items
            .iter()
            .map(|i| (i.bpm, i.key.map(|k| k.to_string())))
            .collect();
        assert_eq!(
            got,
            [
                (Some(120.0), None),
                (None, Some("A minor".into())),
                (Some(90.0), Some("E major".into()))
            ]
        );
        fs::write(&both, "file,bpm,key\na.wav,120,C major\nb.wav,,\n").unwrap();
        let err = format!("{:#}", read_manifest(&both).unwrap_err());
        assert!(
            err.contains("both.csv") && err.contains("line 3") && err.contains("no truth"),
            "{err}"
        );
        // A tempo-only manifest is read as before, with no key truth.
        fs::write(&both, "file,bpm\na.wav,120\n").unwrap();
        assert!(!read_manifest(&both).unwrap().has_key_truth());
    }

    #[test]
    fn a_bad_key_or_no_truth_column_names_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("badkey.csv");
        fs::write(&m, "file,key\na.wav,C major\nb.wav,H dorian\n").unwrap();
        let err = format!("{:#}", read_manifest(&m).unwrap_err());
        assert!(
            err.contains("badkey.csv") && err.contains("line 3") && err.contains("H dorian"),
            "{err}"
        );
        let none = dir.path().join("notruth.csv");
        fs::write(&none, "file,genre\na.wav,rock\n").unwrap();
        let err = format!("{:#}", read_manifest(&none).unwrap_err());
        assert!(
            err.contains("notruth.csv") && err.contains("`bpm`") && err.contains("`key`"),
            "{err}"
        );
    }

    #[test]
    fn folder_prefers_its_manifest() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("manifest.csv"),
            "file,bpm\nmissing.wav,100\n",
        )
        .unwrap();
        let ds = load(
            dir.path().to_str().unwrap(),
            SynthParams {
                count: 0,
                seconds: 1.0,
                seed: 0,
            },
        )
        .unwrap();
        // A listed file that does not exist is kept: it fails later, as a row.
        assert_eq!(ds.items.len(), 1);
        assert!(!ds.items[0].path.exists());
    }

    /// A folder's manifest.csv that is not a regular file is refused naming it, not taken
    /// for no manifest (the folder was scanned instead), nor read without end.
    #[cfg(unix)]
    #[test]
    fn a_folder_manifest_linked_to_a_device_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("01.wav"), b"audio").unwrap();
        fs::write(dir.path().join("01.bpm"), "120").unwrap();
        let manifest = dir.path().join("manifest.csv");
        std::os::unix::fs::symlink("/dev/zero", &manifest).unwrap();
        let params = SynthParams {
            count: 0,
            seconds: 1.0,
            seed: 0,
        };
        let err = format!(
            "{:#}",
            load(dir.path().to_str().unwrap(), params).unwrap_err()
        );
        assert!(
            err.contains(&format!("cannot read manifest {}", manifest.display()))
                && err.contains("is a device"),
            "{err}"
        );
        let err = format!("{:#}", load("/dev/zero", params).unwrap_err());
        assert!(
            err.contains("manifest /dev/zero") && err.contains("device"),
            "{err}"
        );
    }
}
