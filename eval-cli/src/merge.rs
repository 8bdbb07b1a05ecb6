//! `eval-cli merge`: the parts of `analyze --shard K/N` joined into one CSV, byte-identical
//! to the unsharded `analyze --out` of the same paths. Before it writes anything it checks,
//! from each part's side file ([`ShardRecord`]), that the parts share one fingerprint (the
//! same input list and settings) and one N, that every part from 1 to N is there exactly
//! once and complete, that each row has one cell per column and holds the file its record
//! lists at that place, and that together they hold every input row exactly once; any
//! failure is an error that names the file (exit status 2). The other cells are copied as
//! they are: a value edited by hand is not found.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::output::{Destination, Inputs};
use crate::record::{self, AnalyzeRecord};
use crate::report::export;
use crate::runner::{self, IdentityLog, RunSettings};
use crate::shard::ShardRecord;

/// Flags of `eval-cli merge`.
#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// The parts: the `--out` CSVs of `analyze --shard K/N`, each with its
    /// `PART.csv.shard.json` beside it, in any order.
    #[arg(required = true, value_name = "PART")]
    parts: Vec<PathBuf>,
    /// Where the merged CSV goes: written to a temporary file beside FILE, then renamed over
    /// it. Never one of the parts, a folder, a device or a pipe; FILE.lock keeps a second
    /// writer off it.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// Runs `eval-cli merge`.
pub fn run(args: MergeArgs) -> anyhow::Result<ExitCode> {
    // A part's side files are its own too: `--out` never replaces one (the settings and
    // identities are what a later `--resume` of that part reads).
    let inputs = Inputs::of(args.parts.iter().flat_map(|part| {
        [
            part.clone(),
            ShardRecord::path_of(part),
            RunSettings::path_of(part),
            IdentityLog::path_of(part),
        ]
    }));
    // Its lock too: a part named `FILE.lock` is never locked and then removed.
    let (dest, _lock) = Destination::claim(&args.out, &[], &inputs)?;
    let header = record::header();
    let rows = merged_rows(&args.parts, &header)?;
    dest.replace(|out| {
        out.write_all(&header)?;
        rows.iter().try_for_each(|row| out.write_all(row))
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The rows of `parts`, checked, in global input order.
fn merged_rows(parts: &[PathBuf], header: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut records: Vec<(&Path, ShardRecord)> = Vec::with_capacity(parts.len());
    for part in parts {
        if !part.is_file() {
            bail!("{} is not a file: no such part", part.display());
        }
        let record = ShardRecord::read(part)?.with_context(|| {
            format!(
                "{} has no shard record {} (was it written by analyze --shard K/N --out?)",
                part.display(),
                ShardRecord::path_of(part).display()
            )
        })?;
        if !record.complete {
            bail!(
                "{} is incomplete (shard {}): rerun analyze --shard {} --out {} --resume",
                part.display(),
                record.shard,
                record.shard,
                part.display()
            );
        }
        if let Some((first, expected)) = records.first() {
            if record.fingerprint != expected.fingerprint || record.inputs != expected.inputs {
                bail!(
                    "{} comes from another input list or other settings than {} \
                     (fingerprint {} vs {})",
                    part.display(),
                    first.display(),
                    record.fingerprint,
                    expected.fingerprint
                );
            }
            if record.count != expected.count {
                bail!(
                    "{} is shard {} but {} is shard {}: not parts of one split",
                    part.display(),
                    record.shard,
                    first.display(),
                    expected.shard
                );
            }
        }
        if let Some((other, _)) = records.iter().find(|(_, r)| r.index == record.index) {
            bail!(
                "{} and {} are both shard {}",
                other.display(),
                part.display(),
                record.shard
            );
        }
        records.push((part, record));
    }
    let (_, first) = &records[0];
    let (count, inputs) = (first.count, first.inputs);
    if let Some(missing) = (1..=count).find(|k| records.iter().all(|(_, r)| r.index != *k)) {
        bail!(
            "shard {missing}/{count} is missing: none of the parts given holds it \
             (its CSV and .shard.json)"
        );
    }

    let columns = export::csv_columns::<AnalyzeRecord>()?;
    let mut placed: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
    for (part, record) in &records {
        let rows = runner::read_rows(part, header)?;
        if rows.len() != record.rows.len() {
            bail!(
                "{} has {} rows but its shard record lists {}",
                part.display(),
                rows.len(),
                record.rows.len()
            );
        }
        if record.paths.len() != record.rows.len() {
            bail!(
                "{}'s shard record does not list the file of each row (written by an older \
                 eval-cli?): rerun analyze --shard {} --out {}",
                part.display(),
                record.shard,
                part.display()
            );
        }
        for (number, ((row, &at), expected)) in
            (1..).zip(rows.into_iter().zip(&record.rows).zip(&record.paths))
        {
            if let Err(err) = row.check_width(number, columns) {
                bail!(
                    "{}: {err}: the part was edited; rerun analyze --shard {} --out {}",
                    part.display(),
                    record.shard,
                    part.display()
                );
            }
            if !matches!(
                crate::record::read_back(&row.fields, &row.line),
                Ok(Some(_))
            ) {
                bail!(
                    "{}: row {number} is not as this program writes rows (a byte changed on \
                     disk, or by hand): the part was edited; rerun analyze --shard {} --out {}",
                    part.display(),
                    record.shard,
                    part.display()
                );
            }
            let found = row.fields.first().map_or("", String::as_str);
            if found != expected {
                bail!(
                    "{} holds a row for {found:?} where its shard record has {expected:?}: \
                     the part was edited or reordered; rerun analyze --shard {} --out {}",
                    part.display(),
                    record.shard,
                    part.display()
                );
            }
            if at >= inputs || placed.insert(at, row.line).is_some() {
                bail!(
                    "{} holds input row {at}, which is out of range or in another part too",
                    part.display()
                );
            }
        }
    }
    if placed.len() != inputs {
        bail!("the parts hold {} of the {inputs} input rows", placed.len());
    }
    Ok(placed.into_values().collect())
}
