//! `eval-cli dist merge`: waits for the job to be complete, then writes its rows in input
//! order: the bytes of `eval-cli analyze --out`. It stops waiting, saying why, when rows
//! are missing that nothing queued or in flight will bring ([`DistError::RowsLost`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use crate::{record, shard};

use super::args::MergeArgs;
use super::broker::Broker;
use super::error::{DistError, Result};
use super::keys::{CHUNK, Keys, Manifest, manifest_key};

pub(super) fn merge(args: MergeArgs) -> anyhow::Result<ExitCode> {
    // A destination that may not be written is refused before any wait, not at its end;
    // its lock (`FILE.lock`, the one `analyze --out` and `merge` take) is held to the end,
    // so no other run writes it meanwhile (an `analyze --out FILE` under way had its file
    // replaced, and its `--resume` then refused the rows it found).
    let (_, _lock) =
        crate::output::Destination::claim(&args.out, &[], &crate::output::Inputs::none())?;
    let retry = args.retry.of(&args.job);
    let mut broker = Broker::connect_retrying(&args.job, &retry)?;
    // The run in force now: rows of any other run are never read.
    let (manifest, keys) = broker.with_reconnects(&retry, Broker::current_run)?;
    let total = manifest.total();
    let mut last_shown = usize::MAX;
    loop {
        let progress = broker.with_reconnects(&retry, |b| {
            b.ensure_run(&keys)?;
            b.progress(&keys, manifest.files)
        })?;
        let done = progress.done;
        if done >= total {
            break;
        }
        progress.ensure_can_complete(&broker.job, total)?;
        if args.no_wait {
            return Err(DistError::NotComplete {
                job: broker.job.clone(),
                done,
                total,
            }
            .into());
        }
        if done != last_shown {
            eprintln!(
                "eval-cli: waiting for job {:?}: {done} of {total} rows",
                broker.job
            );
            last_shown = done;
        }
        thread::sleep(Duration::from_millis(500));
    }
    let (bytes, failed) = broker.with_reconnects(&retry, |b| {
        let bytes = merged_rows(b, &keys, total)?;
        let failed = b.rows_failed(&keys)?;
        Ok((bytes, failed))
    })?;
    let paths = job_files(&bytes);
    ensure_submitted(&broker.job, &manifest, &paths)?;
    // Now that the rows are here, the job's own files are known: `--out` naming one of them
    // (or a link to one) is refused as `analyze --out` refuses it, before a byte is written.
    // A relative one is where `submit` found it.
    let inputs = crate::output::Inputs::of(paths.iter().map(|p| manifest.on_submitter(p)));
    crate::output::Destination::check(&args.out, &inputs)?;
    crate::output::write_file(&args.out, &bytes)?;
    eprintln!(
        "eval-cli: job {:?}: {total} rows written to {} ({failed} failed)",
        broker.job,
        args.out.display()
    );
    Ok(ExitCode::from(u8::from(failed > 0)))
}

/// The files the merged rows name (their `path` cells), header left out.
fn job_files(csv: &[u8]) -> Vec<PathBuf> {
    csv::Reader::from_reader(csv)
        .byte_records()
        .map_while(std::result::Result::ok)
        .filter_map(|record| {
            let cell = String::from_utf8_lossy(record.get(0)?).into_owned();
            Some(crate::path_cell::parse_path_cell(&cell))
        })
        .collect()
}

/// Fails unless the first rows' paths, one per file of the job, are the files it was
/// submitted with, in order (they hash to the manifest's `list_hash`): a stream entry added
/// by hand in the form of `submit`'s (a re-queue round `G-(index+1)` naming another file)
/// would otherwise put another file's row into the job.
fn ensure_submitted(job: &str, manifest: &Manifest, paths: &[PathBuf]) -> Result<()> {
    let files = &paths[..manifest.files.min(paths.len())];
    let found = shard::list_hash(files);
    if files.len() == manifest.files && found == manifest.list_hash {
        return Ok(());
    }
    Err(DistError::RowsNotSubmitted {
        job: job.to_string(),
        found,
        expected: manifest.list_hash.clone(),
        manifest_key: manifest_key(job),
    })
}

/// The header and the rows of a complete run, in input order.
fn merged_rows(broker: &mut Broker, keys: &Keys, total: usize) -> Result<Vec<u8>> {
    let mut bytes = record::header();
    for start in (0..total).step_by(CHUNK) {
        let indices: Vec<usize> = (start..(start + CHUNK).min(total)).collect();
        let rows: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
            .arg(&keys.rows)
            .arg(&indices)
            .query(&mut broker.con)?;
        for (i, row) in indices.iter().zip(rows) {
            match row {
                Some(row) => bytes.extend(row),
                None => {
                    return Err(DistError::RowMissing {
                        job: broker.job.clone(),
                        index: *i,
                    });
                }
            }
        }
    }
    Ok(bytes)
}
