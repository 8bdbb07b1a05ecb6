//! `analyze --shard K/N`: one of N parts of the input list, for a batch scheduler's job
//! array (Slurm, Kubernetes Indexed Jobs), with no coordinator. Every shard walks and sorts
//! the same inputs, probes the same headers and so computes the same partition on its own
//! ([`partition`]: greedy longest-processing-time over the header-probed cost, ties by
//! input index, so the rule depends on neither the machine, the worker count nor the
//! clock). Each part's CSV is an ordinary analyze CSV; beside it, `PART.csv.shard.json`
//! ([`ShardRecord`]) says which shard it is, which input rows it holds and a fingerprint of
//! the input list and settings, which `merge` checks before it puts the rows back in global
//! input order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use analyzer_core::batch::{self, Batch, Sequential, WalkError};
use analyzer_core::{AnalyzerConfig, StopSignal};
use serde::{Deserialize, Serialize};

use crate::path_cell::path_cell;
use crate::report::export::{self, Json};
use crate::runner::RunSettings;

/// The `--shard K/N` value: the `index`-th (1-based) of `count` parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// Which part, from 1 to `count`.
    pub index: usize,
    /// How many parts the input list is cut into, at least 1.
    pub count: usize,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The side file of a part: what `merge` needs to check it and to put its rows in place.
/// It is written when the part starts (`complete: false`) and again when it completes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// Which part this is, e.g. `2/3`.
    pub shard: String,
    /// The part's number, 1-based.
    pub index: usize,
    /// How many parts there are.
    pub count: usize,
    /// A hash of the input list (files and unreadable folders, in order), the analyzer's
    /// version and settings and `--timeout`: the same on every shard of one job.
    pub fingerprint: String,
    /// Rows of the whole, unsharded output (files, then unreadable folders).
    pub inputs: usize,
    /// The global position of each of this part's rows, in the order of its CSV.
    pub rows: Vec<usize>,
    /// The path cell each of those rows must hold ([`path_cell`]), in the same order:
    /// `merge` places a row only where its own file belongs, so an edited, sorted or
    /// swapped part cannot put one file's values in another's row.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Whether the part ran to the end (a cancelled or failed run leaves `false`).
    pub complete: bool,
}

impl ShardRecord {
    /// The suffix of the record beside a part.
    pub const SUFFIX: &str = ".shard.json";

    /// Where the record of the part `csv` lives: `CSV.shard.json`.
    pub fn path_of(csv: &Path) -> PathBuf {
        crate::output::side_path(csv, Self::SUFFIX)
    }

    /// Writes the record beside the part `csv`.
    pub fn write(&self, csv: &Path) -> anyhow::Result<()> {
        export::write(&Self::path_of(csv), &Json, self)
    }

    /// The record beside the part `csv` (a symlink's target, where `analyze` wrote it),
    /// `None` when there is none.
    pub fn read(csv: &Path) -> anyhow::Result<Option<Self>> {
        let csv = std::fs::canonicalize(csv).unwrap_or_else(|_| csv.to_path_buf());
        export::read_json(&Self::path_of(&csv), "a shard record")
    }
}

/// The inputs of one shard, and its record (not yet complete).
#[derive(Debug)]
pub struct Part {
    /// This shard's files, in input order.
    pub files: Vec<PathBuf>,
    /// The folders that could not be walked: all of them on shard 1, none elsewhere.
    pub walk_errors: Vec<WalkError>,
    /// What the side file says.
    pub record: ShardRecord,
}

/// The inputs of `shard` among the whole walk (`files`, then `walk_errors`), for an
/// analyzer with `config` and `timeout`; `workers` threads probe the headers.
pub fn select(
    shard: Shard,
    files: Vec<PathBuf>,
    walk_errors: Vec<WalkError>,
    config: &AnalyzerConfig,
    timeout: Option<Duration>,
    workers: usize,
) -> Part {
    let fingerprint = fingerprint(&files, &walk_errors, config, timeout);
    let inputs = files.len() + walk_errors.len();
    let assigned = partition(&probe_costs(&files, workers), shard.count);
    let mut rows = Vec::new();
    let mut mine = Vec::new();
    for (i, (path, part)) in files.into_iter().zip(assigned).enumerate() {
        if part + 1 == shard.index {
            rows.push(i);
            mine.push(path);
        }
    }
    // Unreadable folders cost nothing: they are rows of the first shard.
    let walk_errors = if shard.index == 1 {
        rows.extend(inputs - walk_errors.len()..inputs);
        walk_errors
    } else {
        Vec::new()
    };
    let paths = mine
        .iter()
        .chain(walk_errors.iter().map(|e| &e.path))
        .map(|p| path_cell(p))
        .collect();
    Part {
        files: mine,
        walk_errors,
        record: ShardRecord {
            shard: shard.to_string(),
            index: shard.index,
            count: shard.count,
            fingerprint,
            inputs,
            rows,
            paths,
            complete: false,
        },
    }
}

/// The part (0-based) of each item with cost `costs[i]` among `parts` parts: greedy
/// longest-processing-time (Graham 1969, within 4/3 of the best makespan): costliest first,
/// ties by index, each to the least loaded part, ties to the lowest part. An unknown cost
/// (`None`, a file whose headers could not be probed) counts as the average known cost.
pub fn partition(costs: &[Option<f64>], parts: usize) -> Vec<usize> {
    let parts = parts.max(1);
    let usable = |c: &f64| c.is_finite() && *c > 0.0;
    let known: Vec<f64> = costs.iter().flatten().copied().filter(usable).collect();
    let average = if known.is_empty() {
        1.0
    } else {
        known.iter().sum::<f64>() / known.len() as f64
    };
    let cost: Vec<f64> = costs
        .iter()
        .map(|c| c.filter(usable).unwrap_or(average))
        .collect();
    let mut order: Vec<usize> = (0..costs.len()).collect();
    batch::costliest_first(&mut order, &cost);
    // Loads are finite and non-negative, so their bit patterns sort as the numbers do.
    // Every cost is positive, so with more parts than items each item takes the lowest
    // empty part: parts past the item count stay empty and need no slot in the heap (a
    // `--shard 1/4294967296` must not allocate one per part).
    let slots = parts.min(costs.len()).max(1);
    let mut loads: BinaryHeap<Reverse<(u64, usize)>> =
        (0..slots).map(|p| Reverse((0f64.to_bits(), p))).collect();
    let mut assigned = vec![0; costs.len()];
    for i in order {
        let Reverse((load, part)) = loads.pop().expect("at least one part");
        assigned[i] = part;
        loads.push(Reverse(((f64::from_bits(load) + cost[i]).to_bits(), part)));
    }
    assigned
}

/// The header-probed cost of each file ([`batch::audio_cost`]), `None` where the probe
/// failed; probed on `workers` threads, the same values whatever the count.
pub fn probe_costs(files: &[PathBuf], workers: usize) -> Vec<Option<f64>> {
    fn cost(path: &Path, _: &StopSignal) -> analyzer_core::Result<f64> {
        Ok(batch::audio_cost(path))
    }
    let executor = batch::executor_for(workers.min(files.len()).max(1))
        .unwrap_or_else(|_| Box::new(Sequential));
    let summary = Batch::new(&cost).run(files, &*executor);
    let mut costs = vec![None; files.len()];
    for result in summary.results {
        // `audio_cost` says 0 for a file it cannot probe.
        costs[result.index] = result.value.filter(|c| *c > 0.0);
    }
    costs
}

/// The fingerprint of a job: BLAKE3 over the run's settings ([`RunSettings`], the same
/// identity `--resume` checks: version, analyzer fingerprint, `--timeout`) and every input
/// path, each field length-prefixed; the first 128 bits, in hex.
pub fn fingerprint(
    files: &[PathBuf],
    walk_errors: &[WalkError],
    config: &AnalyzerConfig,
    timeout: Option<Duration>,
) -> String {
    let mut hash = Fields::default();
    hash.field(RunSettings::new(config, timeout).to_string().as_bytes());
    hash.paths(files.iter());
    hash.paths(walk_errors.iter().map(|e| &e.path));
    hash.hex128()
}

/// A hash of a file list (BLAKE3 over length-prefixed paths, in order, first 128 bits),
/// for a distributed job's manifest: the same list gives the same hash on every machine.
pub fn list_hash(files: &[PathBuf]) -> String {
    let mut hash = Fields::default();
    hash.paths(files.iter());
    hash.hex128()
}

/// Length-prefixed fields into BLAKE3, so that no two lists of fields hash alike by
/// concatenation (`["ab"]` and `["a", "b"]`).
#[derive(Default)]
struct Fields(blake3::Hasher);

impl Fields {
    fn field(&mut self, bytes: &[u8]) {
        self.0.update(&(bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }

    /// The count, then each path's bytes.
    fn paths<'a>(&mut self, paths: impl ExactSizeIterator<Item = &'a PathBuf>) {
        self.field(&paths.len().to_le_bytes());
        for path in paths {
            self.field(path.as_os_str().as_encoded_bytes());
        }
    }

    fn hex128(&self) -> String {
        self.0.finalize().to_hex()[..32].to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_processing_time_balances_by_cost_not_count() {
        let mut costs = vec![Some(10.0)];
        costs.extend([Some(1.0); 9]);
        let parts = partition(&costs, 2);
        assert_eq!(parts, [0, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    }

    #[test]
    fn ties_go_by_index_and_unknown_costs_count_as_the_average() {
        assert_eq!(partition(&[Some(1.0); 5], 2), [0, 1, 0, 1, 0]);
        // The average of the known costs is 3: the unknown file ties with index 1 and
        // comes after it.
        let parts = partition(&[Some(5.0), Some(3.0), None, Some(1.0)], 3);
        assert_eq!(parts, [0, 1, 2, 1]);
        assert_eq!(partition(&[None, None, None], 2), [0, 1, 0]);
        assert_eq!(partition(&[], 4), Vec::<usize>::new());
        // More parts than items: some parts are empty.
        assert_eq!(partition(&[Some(2.0), Some(1.0)], 5), [0, 1]);
    }

    #[test]
    fn a_huge_part_count_costs_no_memory_per_part() {
        // One heap slot per part aborted the process with an allocation failure.
        let parts = partition(&[Some(1.0), None, Some(3.0)], usize::MAX);
        assert_eq!(parts, [2, 1, 0]);
    }

    #[test]
    fn list_hash_depends_on_every_path_and_their_order() {
        let files = [PathBuf::from("a.wav"), PathBuf::from("b.wav")];
        let base = list_hash(&files);
        assert_eq!(base, list_hash(&files.clone()));
        assert_ne!(base, list_hash(&[files[1].clone(), files[0].clone()]));
        assert_ne!(base, list_hash(&[PathBuf::from("a.wavb.wav")]));
        assert_ne!(base, list_hash(&files[..1]));
    }

    #[test]
    fn fingerprint_depends_on_the_list_and_the_settings() {
        let files = [PathBuf::from("a.wav"), PathBuf::from("b.wav")];
        let config = AnalyzerConfig::default();
        let base = fingerprint(&files, &[], &config, None);
        assert_eq!(base.len(), 32);
        assert_eq!(base, fingerprint(&files, &[], &config, None));
        assert_ne!(base, fingerprint(&files[..1], &[], &config, None));
        let joined = [PathBuf::from("a.wavb.wav")];
        assert_ne!(base, fingerprint(&joined, &[], &config, None));
        let other = config.clone().with_bpm_range(60.0, 200.0);
        assert_ne!(base, fingerprint(&files, &[], &other, None));
        let timeout = Some(Duration::from_secs(5));
        assert_ne!(base, fingerprint(&files, &[], &config, timeout));
    }
}
