//! Datasets as folders of audio with annotation files beside it or below it: a
//! GiantSteps-style `.bpm` text file, a JAMS file whose first `tempo` annotation gives the
//! tempo and whose first `key_mode` annotation gives the key, a GiantSteps Key-style `.key`
//! text file, each matched to the audio of the same stem ([`super::load`] of a folder
//! without a manifest.csv).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use analyzer_core::batch;
use analyzer_core::key::Key;
use anyhow::{Context, bail};

use super::{Dataset, Item};
use crate::file_id::FileId;
use crate::input::{MAX_SMALL_BYTES, read_regular, read_regular_text};
use crate::path_cell::path_cell;

/// Scans a folder for audio files with `.bpm` or JAMS tempo annotations, or `.key` key
/// annotations (GiantSteps Key's layout), of the same stem.
///
/// An annotation beside audio of its stem (`A/01.bpm` beside `A/01.wav`) is that file's and
/// no other's: `B/01.wav` never gets it. Audio with none beside it takes the first, in
/// sorted order, of its stem found elsewhere that is beside no audio of that stem
/// (`annotations/tempo/01.bpm`, GiantSteps' layout). Two annotations of one kind that
/// disagree, beside the audio (`01.bpm` and `01.jams`) or elsewhere (`annotations/01.bpm`
/// and `annotations_v2/01.bpm`), are refused for audio that would take one, naming both. Stems are compared as the bytes they
/// are, so `a\xFF` and `a\xFE` are two stems, and an item's `file` is [`path_cell`]'s.
pub fn scan_folder(dir: &Path) -> anyhow::Result<Dataset> {
    // Every file, annotations included, in sorted order; a link back up is an error.
    let (files, errors) = batch::collect_files(&[dir.to_path_buf()], |_| true);
    if let Some(e) = errors.first() {
        bail!("cannot scan folder {}: {}", dir.display(), e.reason);
    }
    let audio: BTreeSet<Place> = files
        .iter()
        .filter(|f| batch::is_audio_name(f))
        .filter_map(|f| place_of(f))
        .collect();
    let mut tempi: Annotations<Tempo> = Annotations::default();
    let mut keys: Annotations<Key> = Annotations::default();
    for f in &files {
        let (Some(place), Some(ext)) = (place_of(f), ext_of(f)) else {
            continue;
        };
        // A Mac's `._01.bpm` beside `01.bpm` is metadata, not a truth: as text it ended
        // the whole scan.
        if batch::is_apple_double(f) {
            continue;
        }
        // Each reader's error names the file.
        let found = match ext.as_str() {
            "bpm" => Tempo(read_bpm_file(f)?, "bpm"),
            "jams" => {
                let (tempo, key) = read_jams(f)?;
                if let Some(key) = key {
                    keys.add(f, &place, key, &audio);
                }
                match tempo {
                    Some(bpm) => Tempo(bpm, "jams"),
                    None => continue,
                }
            }
            "key" => {
                let key = read_key_file(f)?;
                keys.add(f, &place, key, &audio);
                continue;
            }
            _ => continue,
        };
        tempi.add(f, &place, found, &audio);
    }
    let mut items = Vec::new();
    // Each file once, as in a manifest: a link or a second name of a file scored twice.
    let mut seen: std::collections::HashMap<FileId, String> = std::collections::HashMap::new();
    for f in &files {
        let (Some(place), Some(ext)) = (place_of(f), ext_of(f)) else {
            continue;
        };
        if !batch::is_audio_name(f) {
            continue;
        }
        let refuse = |why: String| anyhow::anyhow!("folder {}: {why}", dir.display());
        let tempo = tempi.of(f, &place).map_err(refuse)?;
        let key = keys.of(f, &place).map_err(refuse)?;
        if tempo.is_none() && key.is_none() {
            continue;
        }
        let file = file_cell(f.strip_prefix(dir).unwrap_or(f));
        if let Some(id) = FileId::of_file(f) {
            if let Some(first) = seen.get(&id) {
                bail!(
                    "folder {}: {file:?} is the file {first:?} again (another name for it); \
                     a file annotated twice would count twice in every score",
                    dir.display()
                );
            }
            seen.insert(id, file.clone());
        }
        // The tempo annotation's kind, as before keys were read; `key` for a key alone.
        let kind = tempo.map_or("key", |Tempo(_, kind)| kind);
        let meta = BTreeMap::from([
            ("annotation".to_string(), kind.to_string()),
            ("format".to_string(), ext.clone()),
        ]);
        items.push(Item {
            file,
            path: f.clone(),
            bpm: tempo.map(|Tempo(bpm, _)| bpm),
            key,
            meta,
        });
    }
    if items.is_empty() {
        bail!(
            "folder {}: no manifest.csv and no audio file with a .bpm, .jams or .key annotation",
            dir.display()
        );
    }
    Ok(Dataset {
        label: dir.display().to_string(),
        location: dir.to_path_buf(),
        items,
        meta_columns: vec!["annotation".into(), "format".into()],
    })
}

/// A tempo annotation and the kind of file it came from (`bpm`, `jams`); two agree when
/// their tempi do, whatever files they came from.
#[derive(Debug, Clone, Copy)]
struct Tempo(f64, &'static str);

impl PartialEq for Tempo {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

/// Where a file sits for matching: its folder and its stem, the stem as bytes.
type Place = (PathBuf, OsString);

/// The [`Place`] of `path`; `None` for a name with no stem.
fn place_of(path: &Path) -> Option<Place> {
    let folder = path.parent().unwrap_or(Path::new(""));
    Some((folder.to_path_buf(), path.file_stem()?.to_os_string()))
}

/// One kind of annotation (tempo or key) of a scanned folder, found in sorted order.
struct Annotations<T> {
    /// By folder and stem (a `.bpm` and a `.jams` beside one audio file are one place).
    by_place: BTreeMap<Place, Found<T>>,
    /// By stem alone, the first of each stem that is beside no audio of that stem: for
    /// audio with no annotation of its own beside it.
    elsewhere: BTreeMap<OsString, Found<T>>,
}

/// The first annotation found for a place (or, away from its audio, a stem), and the
/// first later one that disagrees with it: which of two is the truth is not ours to pick.
struct Found<T> {
    value: T,
    file: PathBuf,
    disagreeing: Option<PathBuf>,
}

impl<T> Default for Annotations<T> {
    fn default() -> Self {
        Self {
            by_place: BTreeMap::new(),
            elsewhere: BTreeMap::new(),
        }
    }
}

impl<T: Copy + PartialEq> Annotations<T> {
    /// Files the annotation `file`, found at `place`, where `audio` holds the places of
    /// the audio.
    fn add(&mut self, file: &Path, place: &Place, value: T, audio: &BTreeSet<Place>) {
        Found::file(&mut self.by_place, place.clone(), file, value);
        if !audio.contains(place) {
            Found::file(&mut self.elsewhere, place.1.clone(), file, value);
        }
    }

    /// The annotation of the audio `audio` at `place`: its own beside it, else its stem's
    /// from elsewhere; refused, naming both, when two from elsewhere disagree.
    fn of(&self, audio: &Path, place: &Place) -> Result<Option<T>, String> {
        let (found, where_) = match self.by_place.get(place) {
            Some(own) => (own, "two annotations beside it disagree"),
            None => match self.elsewhere.get(&place.1) {
                Some(found) => (found, "it has none beside it, and two elsewhere disagree"),
                None => return Ok(None),
            },
        };
        match &found.disagreeing {
            None => Ok(Some(found.value)),
            Some(other) => Err(format!(
                "{}: {where_}: {} and {}; keep the right one beside the audio, and remove \
                 the other",
                audio.display(),
                found.file.display(),
                other.display()
            )),
        }
    }
}

impl<T: Copy + PartialEq> Found<T> {
    /// Files `value`, read from `file`, under `at` in `map`: the first of `at`, or the
    /// first later one that disagrees with it.
    fn file<K: Ord>(map: &mut BTreeMap<K, Found<T>>, at: K, file: &Path, value: T) {
        match map.get_mut(&at) {
            None => {
                let first = Found {
                    value,
                    file: file.to_path_buf(),
                    disagreeing: None,
                };
                map.insert(at, first);
            }
            Some(first) if first.value != value && first.disagreeing.is_none() => {
                first.disagreeing = Some(file.to_path_buf());
            }
            Some(_) => {}
        }
    }
}

/// The `file` cell of a path relative to the dataset folder: each part's [`path_cell`]
/// (exact for a name that is not UTF-8), joined by `/` on every platform.
fn file_cell(relative: &Path) -> String {
    let parts: Vec<String> = relative
        .iter()
        .map(|part| path_cell(Path::new(part)))
        .collect();
    parts.join("/")
}

fn ext_of(path: &Path) -> Option<String> {
    Some(path.extension()?.to_string_lossy().to_ascii_lowercase())
}

/// What prefixes an error in the annotation at `path`.
fn in_file(path: &Path) -> String {
    format!("annotation {}", path.display())
}

/// Reads a GiantSteps-style `.bpm` file: one number (surrounding whitespace ignored).
///
/// Like the other annotation readers here, it reads only a regular file of at most 64 MiB
/// ([`read_regular`]: a named pipe or a link to `/dev/zero` is an error naming it, never
/// waited on nor read without end), and its errors name the file.
pub fn read_bpm_file(path: &Path) -> anyhow::Result<f64> {
    let text = read_regular_text(path, MAX_SMALL_BYTES, "annotation ")?;
    let first = without_bom(&text).split_whitespace().next().unwrap_or("");
    first
        .parse::<f64>()
        .ok()
        .filter(|b| b.is_finite() && *b > 0.0 && *b <= super::MAX_TRUTH_BPM)
        .with_context(|| {
            format!(
                "expected a positive tempo up to {}, found {first:?}",
                super::MAX_TRUTH_BPM
            )
        })
        .with_context(|| in_file(path))
}

/// `text` without the byte-order mark a Windows editor starts a file with (a manifest is
/// read past one; `\u{feff}95` was "expected a positive tempo").
fn without_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// Reads a GiantSteps Key-style `.key` file: a key as text (`Eb minor`), surrounding
/// whitespace ignored.
pub fn read_key_file(path: &Path) -> anyhow::Result<Key> {
    let text = read_regular_text(path, MAX_SMALL_BYTES, "annotation ")?;
    let key: Key = without_bom(&text)
        .trim()
        .parse()
        .with_context(|| in_file(path))?;
    Ok(key)
}

/// Reads a JAMS file's truth: the first `tempo` annotation's first value, and the key of
/// the first `key_mode` annotation (the one held longest where the key changes). Both the
/// list form (`data: [{"value": 120, ..}]`) and the older column form (`data: {"value":
/// [120]}`) are read. A file with neither is an error; so is a key that is not major or
/// minor (`D:dorian`): the key metrics score 24 keys.
pub fn read_jams(path: &Path) -> anyhow::Result<(Option<f64>, Option<Key>)> {
    let bytes = read_regular(path, MAX_SMALL_BYTES, "annotation ")?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    jams_truth(bytes).with_context(|| in_file(path))
}

/// [`read_jams`] of the file's bytes.
fn jams_truth(bytes: &[u8]) -> anyhow::Result<(Option<f64>, Option<Key>)> {
    let json: serde_json::Value = serde_json::from_slice(bytes)?;
    let annotations = |namespace: &'static str| {
        json["annotations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(move |a| a["namespace"] == namespace)
    };
    // The first tempo annotation's first value, held to a manifest's rule: a bad one
    // (`-120`, `"120"`, 5000) left the file out of every tempo figure, or let a later
    // annotation's value stand in, in silence.
    let first = annotations("tempo").find_map(|a| observations(&a["data"]).first().map(|o| o.0));
    let tempo = match first {
        None => None,
        Some(value) => Some(
            value
                .as_f64()
                .filter(|b| b.is_finite() && *b > 0.0 && *b <= super::MAX_TRUTH_BPM)
                .with_context(|| {
                    format!(
                        "the first `tempo` annotation's value is {value}, not a positive \
                         number up to {}",
                        super::MAX_TRUTH_BPM
                    )
                })?,
        ),
    };
    let key = match annotations("key_mode").next() {
        Some(a) => jams_key(&observations(&a["data"]))?,
        None => None,
    };
    if tempo.is_none() && key.is_none() {
        bail!("no `tempo` annotation with a positive value and no `key_mode` annotation");
    }
    Ok((tempo, key))
}

/// The `(value, duration)` observations of a JAMS annotation's `data`, in either form.
fn observations(data: &serde_json::Value) -> Vec<(&serde_json::Value, f64)> {
    let duration = |d: &serde_json::Value| d.as_f64().unwrap_or(0.0);
    match data.as_array() {
        Some(list) => list
            .iter()
            .map(|o| (&o["value"], duration(&o["duration"])))
            .collect(),
        None => data["value"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, v)| (v, duration(&data["duration"][i])))
            .collect(),
    }
}

/// The key held longest among `key_mode` observations (`A:minor`, `Eb:major`; `N`, no
/// key, is passed over): `None` when there is none.
fn jams_key(observations: &[(&serde_json::Value, f64)]) -> anyhow::Result<Option<Key>> {
    let mut held: Vec<(Key, f64)> = Vec::new();
    for (value, duration) in observations {
        let text = value
            .as_str()
            .context("a key_mode value that is not text")?;
        if text == "N" {
            continue;
        }
        let Some((tonic, mode)) = text.split_once(':') else {
            bail!("key_mode {text:?} has no mode (expected e.g. `A:minor`)");
        };
        let key: Key = format!("{tonic} {mode}")
            .parse()
            .with_context(|| format!("key_mode {text:?}"))?;
        match held.iter_mut().find(|(k, _)| *k == key) {
            Some((_, total)) => *total += duration,
            None => held.push((key, *duration)),
        }
    }
    // The first of the longest: stable for equal durations.
    Ok(held
        .iter()
        .fold(None, |best: Option<(Key, f64)>, &(k, d)| match best {
            Some((_, bd)) if bd >= d => best,
            _ => Some((k, d)),
        })
        .map(|(k, _)| k))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::manifest::{SynthParams, load};

    /// A tempo truth a manifest refuses is refused in an annotation too, naming the file:
    /// a JAMS tempo of -120 beside a key left the file out of every tempo figure, and a
    /// `.bpm` of 5000 was scored.
    #[test]
    fn a_bad_annotated_tempo_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("a.wav"), b"").unwrap();
        let key = r#"{"namespace":"key_mode","data":[{"value":"A:major","duration":1}]}"#;
        for (value, said) in [
            ("-120", "value is -120"),
            ("\"120\"", "value is \"120\""),
            ("5000", "value is 5000"),
        ] {
            let tempo = format!(r#"{{"namespace":"tempo","data":[{{"value":{value}}}]}}"#);
            let later = r#"{"namespace":"tempo","data":[{"value":90}]}"#;
            fs::write(
                root.join("a.jams"),
                format!(r#"{{"annotations":[{tempo},{later},{key}]}}"#),
            )
            .unwrap();
            let err = format!("{:#}", scan_folder(root).unwrap_err());
            assert!(
                err.contains("a.jams") && err.contains(said),
                "{value}: {err}"
            );
        }
        fs::remove_file(root.join("a.jams")).unwrap();
        fs::write(root.join("a.bpm"), "5000\n").unwrap();
        let err = format!("{:#}", scan_folder(root).unwrap_err());
        assert!(err.contains("a.bpm") && err.contains("up to 1000"), "{err}");
        fs::write(root.join("a.bpm"), "1000\n").unwrap();
        assert_eq!(scan_folder(root).unwrap().items[0].bpm, Some(1000.0));
        // A byte-order mark is read past, as in a manifest.
        fs::write(root.join("a.bpm"), "\u{feff}95\n").unwrap();
        fs::write(root.join("a.key"), "\u{feff}Eb minor\n").unwrap();
        let item = &scan_folder(root).unwrap().items[0];
        assert_eq!(item.bpm, Some(95.0));
        assert_eq!(item.key.unwrap().to_string(), "D# minor");
        fs::remove_file(root.join("a.bpm")).unwrap();
        fs::remove_file(root.join("a.key")).unwrap();
        fs::write(
            root.join("a.jams"),
            "\u{feff}{\"annotations\":[{\"namespace\":\"tempo\",\"data\":[{\"value\":88}]}]}",
        )
        .unwrap();
        assert_eq!(scan_folder(root).unwrap().items[0].bpm, Some(88.0));
    }

    /// Two annotations of one stem away from its audio that disagree (two versions of a
    /// dataset's annotations side by side) are refused, naming both: the first in sorted
    /// order was taken silently. Copies that agree are one annotation; audio with its own
    /// annotation beside it is not concerned.
    #[test]
    fn two_annotations_elsewhere_that_disagree_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for folder in ["audio", "annotations", "annotations_v2"] {
            fs::create_dir_all(root.join(folder)).unwrap();
        }
        fs::write(root.join("audio/01.wav"), b"").unwrap();
        fs::write(root.join("annotations/01.bpm"), "120").unwrap();
        fs::write(root.join("annotations_v2/01.bpm"), "120.0\n").unwrap();
        assert_eq!(scan_folder(root).unwrap().items[0].bpm, Some(120.0));
        fs::write(root.join("annotations_v2/01.bpm"), "121").unwrap();
        let err = format!("{:#}", scan_folder(root).unwrap_err());
        assert!(
            err.contains("two elsewhere disagree")
                && err.contains("annotations/01.bpm")
                && err.contains("annotations_v2/01.bpm"),
            "{err}"
        );
        fs::write(root.join("audio/01.bpm"), "119").unwrap();
        assert_eq!(scan_folder(root).unwrap().items[0].bpm, Some(119.0));
        // Beside the audio too: a `.jams` that says otherwise than the `.bpm`.
        let jams = r#"{"annotations":[{"namespace":"tempo","data":[{"time":0,"duration":5,"value":75,"confidence":1}]}]}"#;
        fs::write(root.join("audio/01.jams"), jams).unwrap();
        let err = format!("{:#}", scan_folder(root).unwrap_err());
        assert!(
            err.contains("two annotations beside it disagree")
                && err.contains("audio/01.bpm")
                && err.contains("audio/01.jams"),
            "{err}"
        );
        fs::write(root.join("audio/01.jams"), jams.replace("75", "119")).unwrap();
        assert_eq!(scan_folder(root).unwrap().items[0].bpm, Some(119.0));
    }

    #[test]
    fn giantsteps_layout() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("audio")).unwrap();
        fs::create_dir_all(root.join("annotations/tempo")).unwrap();
        fs::write(root.join("audio/123.LOFI.mp3"), b"").unwrap();
        fs::write(root.join("annotations/tempo/123.LOFI.bpm"), "128\n").unwrap();
        fs::write(root.join("beside.wav"), b"").unwrap();
        fs::write(root.join("beside.bpm"), " 92.5 ").unwrap();
        fs::write(root.join("unlabelled.flac"), b"").unwrap();
        let ds = load(
            root.to_str().unwrap(),
            SynthParams {
                count: 0,
                seconds: 1.0,
                seed: 0,
            },
        )
        .unwrap();
        let got: Vec<_> = ds.items.iter().map(|i| (i.file.as_str(), i.bpm)).collect();
        assert_eq!(
            got,
            [
                ("audio/123.LOFI.mp3", Some(128.0)),
                ("beside.wav", Some(92.5))
            ]
        );
        assert_eq!(ds.items[0].meta["format"], "mp3");
    }

    #[test]
    fn giantsteps_key_layout_beside_tempo() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("audio")).unwrap();
        fs::create_dir_all(root.join("annotations/key")).unwrap();
        fs::create_dir_all(root.join("annotations/tempo")).unwrap();
        for name in ["1.LOFI", "2.LOFI", "3.LOFI"] {
            fs::write(root.join(format!("audio/{name}.mp3")), b"").unwrap();
        }
        fs::write(root.join("annotations/key/1.LOFI.key"), "Eb minor\n").unwrap();
        fs::write(root.join("annotations/key/2.LOFI.key"), "A major").unwrap();
        fs::write(root.join("annotations/tempo/2.LOFI.bpm"), "128").unwrap();
        let ds = scan_folder(root).unwrap();
        let got: Vec<(&str, Option<f64>, Option<String>, &str)> = ds
            .items
            .iter()
            .map(|i| {
                let key = i.key.map(|k| k.to_string());
                (i.file.as_str(), i.bpm, key, i.meta["annotation"].as_str())
            })
            .collect();
        assert_eq!(
            got,
            [
                ("audio/1.LOFI.mp3", None, Some("D# minor".into()), "key"),
                (
                    "audio/2.LOFI.mp3",
                    Some(128.0),
                    Some("A major".into()),
                    "bpm"
                ),
            ]
        );
        fs::write(root.join("annotations/key/3.LOFI.key"), "Eb phrygian").unwrap();
        let err = format!("{:#}", scan_folder(root).unwrap_err());
        assert!(
            err.contains("3.LOFI.key") && err.contains("phrygian"),
            "{err}"
        );
    }

    #[test]
    fn jams_layout() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("song.flac"), b"").unwrap();
        fs::write(
            root.join("song.jams"),
            r#"{"annotations": [
                {"namespace": "beat", "data": [{"time": 0.5, "value": 1}]},
                {"namespace": "tempo", "data": [{"time": 0, "duration": 30, "value": 141.0, "confidence": 1}]}
            ], "file_metadata": {"duration": 30}}"#,
        )
        .unwrap();
        let ds = scan_folder(root).unwrap();
        assert_eq!(ds.items.len(), 1);
        assert_eq!(ds.items[0].bpm, Some(141.0));
        assert_eq!(ds.items[0].meta["annotation"], "jams");
        fs::write(root.join("song.jams"), r#"{"annotations": []}"#).unwrap();
        let err = format!("{:#}", scan_folder(root).unwrap_err());
        assert!(err.contains("song.jams"), "{err}");
    }

    #[test]
    fn jams_key_mode_gives_the_key_held_longest_and_refuses_modes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let jams = |annotations: &str| {
            fs::write(
                root.join("song.jams"),
                format!(r#"{{"annotations": [{annotations}]}}"#),
            )
            .unwrap();
        };
        fs::write(root.join("song.mp3"), b"").unwrap();
        // A key alone, with a modulation: E minor is held 20 s, G major 10 s; `N` passes.
        jams(
            r#"{"namespace": "key_mode", "data": [
                {"time": 0, "duration": 2, "value": "N"},
                {"time": 2, "duration": 10, "value": "G:major"},
                {"time": 12, "duration": 20, "value": "E:minor"}]}"#,
        );
        let item = &scan_folder(root).unwrap().items[0];
        assert_eq!(
            (item.bpm, item.key.map(|k| k.to_string())),
            (None, Some("E minor".into()))
        );
        assert_eq!(item.meta["annotation"], "key");
        // Tempo and key in one file, the column form, a flat key.
        jams(
            r#"{"namespace": "tempo", "data": {"time": [0], "duration": [30], "value": [98.0]}},
               {"namespace": "key_mode", "data": {"time": [0], "duration": [30], "value": ["Eb:minor"]}}"#,
        );
        let item = &scan_folder(root).unwrap().items[0];
        assert_eq!(item.bpm, Some(98.0));
        assert_eq!(item.key.map(|k| k.to_string()), Some("D# minor".into()));
        assert_eq!(item.meta["annotation"], "jams");
        // A mode the key metrics cannot score, or no mode at all, names the file.
        for value in ["D:dorian", "C"] {
            jams(&format!(
                r#"{{"namespace": "key_mode", "data": [{{"time": 0, "duration": 1, "value": "{value}"}}]}}"#
            ));
            let err = format!("{:#}", scan_folder(root).unwrap_err());
            assert!(err.contains("song.jams") && err.contains(value), "{err}");
        }
    }

    /// An annotation beside audio of its stem is that file's alone: `B/01.wav` was scored
    /// against `A/01.bpm` (the first `01` of the tree), and so was its key.
    #[test]
    fn an_annotation_beside_audio_is_that_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let put = |name: &str, text: &str| {
            let path = root.join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        };
        for (folder, bpm, key) in [("A", "100", "C major"), ("B", "150", "A minor")] {
            put(&format!("{folder}/01.wav"), folder);
            put(&format!("{folder}/01.bpm"), bpm);
            put(&format!("{folder}/01.key"), key);
        }
        // Nothing beside it, and every `01` annotation is another file's: no truth.
        put("C/01.wav", "C");
        // A key beside it, its tempo elsewhere (GiantSteps' layout), twice alike.
        put("D/02.wav", "D");
        put("D/02.key", "E minor");
        put("annotations/tempo/02.bpm", "90");
        put("annotations_v2/tempo/02.bpm", "90.0");
        let ds = scan_folder(root).unwrap();
        let got: Vec<(&str, Option<f64>, Option<String>)> = ds
            .items
            .iter()
            .map(|i| (i.file.as_str(), i.bpm, i.key.map(|k| k.to_string())))
            .collect();
        assert_eq!(
            got,
            [
                ("A/01.wav", Some(100.0), Some("C major".into())),
                ("B/01.wav", Some(150.0), Some("A minor".into())),
                ("D/02.wav", Some(90.0), Some("E minor".into())),
            ]
        );
    }

    /// Stems that differ only in bytes that are not UTF-8 are two stems, and the `file`
    /// cells are [`path_cell`]'s: both were `a\u{FFFD}`, one truth for the two.
    #[cfg(unix)]
    #[test]
    fn stems_that_are_not_utf8_stay_apart() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let name = |bytes: &[u8]| dir.path().join(std::ffi::OsStr::from_bytes(bytes));
        fs::write(name(b"a\xFF.wav"), b"ff").unwrap();
        fs::write(name(b"a\xFF.bpm"), "100").unwrap();
        fs::write(name(b"a\xFE.wav"), b"fe").unwrap();
        fs::write(name(b"a\xFE.bpm"), "150").unwrap();
        let ds = scan_folder(dir.path()).unwrap();
        let got: Vec<(&str, &Path, Option<f64>)> = ds
            .items
            .iter()
            .map(|i| (i.file.as_str(), i.path.as_path(), i.bpm))
            .collect();
        assert_eq!(
            got,
            [
                ("a\\xFE.wav", name(b"a\xFE.wav").as_path(), Some(150.0)),
                ("a\\xFF.wav", name(b"a\xFF.wav").as_path(), Some(100.0)),
            ]
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_file_annotated_under_two_names_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("x.wav"), b"audio").unwrap();
        fs::write(dir.path().join("x.bpm"), "120").unwrap();
        fs::write(dir.path().join("y.wav"), b"other audio").unwrap();
        fs::write(dir.path().join("y.bpm"), "120").unwrap();
        assert_eq!(scan_folder(dir.path()).unwrap().items.len(), 2);
        fs::hard_link(dir.path().join("x.wav"), dir.path().join("x2.wav")).unwrap();
        fs::write(dir.path().join("x2.bpm"), "120").unwrap();
        let err = format!("{:#}", scan_folder(dir.path()).unwrap_err());
        assert!(
            err.contains("\"x2.wav\" is the file \"x.wav\" again"),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_link_loop_in_a_scanned_folder_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("sub")).unwrap();
        fs::write(root.join("sub/song.opus"), b"").unwrap();
        fs::write(root.join("sub/song.bpm"), "120\n").unwrap();
        let ds = scan_folder(root).unwrap();
        // The audio extensions are the batch walker's: Opus is one of them.
        assert_eq!(ds.items[0].file, "sub/song.opus");
        std::os::unix::fs::symlink(root, root.join("sub/loop")).unwrap();
        let err = format!("{:#}", scan_folder(root).unwrap_err());
        assert!(err.contains("loop"), "{err}");
    }

    /// An annotation linked to a device is refused naming it: `/dev/zero` was read until
    /// memory ran out. The same for a `.key` and a JAMS file.
    #[cfg(unix)]
    #[test]
    fn an_annotation_linked_to_a_device_is_refused_naming_it() {
        for ext in ["bpm", "key", "jams"] {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join("01.wav"), b"audio").unwrap();
            let annotation = dir.path().join(format!("01.{ext}"));
            std::os::unix::fs::symlink("/dev/zero", &annotation).unwrap();
            let err = format!("{:#}", scan_folder(dir.path()).unwrap_err());
            assert!(
                err.contains(&format!("01.{ext}")) && err.contains("is a device"),
                "{err}"
            );
        }
    }

    /// A folder copied from a Mac holds `._NAME` beside every file: its AppleDouble
    /// annotations are passed over like its AppleDouble audio (a binary `._a.bpm` ended the
    /// scan as "not UTF-8 text").
    #[test]
    fn apple_double_annotations_are_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("a.wav"), b"").unwrap();
        fs::write(root.join("a.bpm"), "95\n").unwrap();
        let apple_double = b"\x00\x05\x16\x07\x00\x02\x00\x00\xff\xfe";
        for name in ["._a.wav", "._a.bpm", "._a.jams", "._a.key"] {
            fs::write(root.join(name), apple_double).unwrap();
        }
        let ds = scan_folder(root).unwrap();
        assert_eq!(ds.items.len(), 1);
        assert_eq!(ds.items[0].bpm, Some(95.0));
    }
}
