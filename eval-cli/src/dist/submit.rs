//! `eval-cli dist submit`: records the job's manifest and queues one stream entry per file;
//! a rerun adds only the entries that are missing.

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::ExitCode;

use analyzer_core::batch::{self, Status, WalkError};
use redis::streams::StreamRangeReply;

use crate::record::AnalyzeRecord;
use crate::report::export::{CsvLine, Exporter};

use super::args::SubmitArgs;
use super::broker::Broker;
use super::error::{DistError, Result};
use super::keys::{CHUNK, GROUP, Keys, Manifest, entry_seq, manifest_key};

pub(super) fn submit(args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let analyzer = args.settings.analyzer()?;
    let (files, walk_errors) = batch::collect_audio_files(&args.paths);
    let manifest = Manifest::new(&analyzer, &files, walk_errors.len())?;
    let mut broker = Broker::connect(&args.job)?;
    let already = queue(&mut broker, manifest, &files, &walk_errors)?;
    eprintln!(
        "eval-cli: job {:?}: {} files queued ({} new), {} unreadable inputs",
        broker.job,
        files.len(),
        files.len() - already.min(files.len()),
        walk_errors.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// Records the job's `manifest` (or checks that the job on the broker has the same), then
/// queues the entries of `files` a previous `submit` did not add, and the rows of the
/// inputs that could not be walked. Returns how many entries were already queued.
fn queue(
    broker: &mut Broker,
    manifest: Manifest,
    files: &[PathBuf],
    walk_errors: &[WalkError],
) -> Result<usize> {
    let created: Option<String> = redis::cmd("SET")
        .arg(manifest_key(&broker.job))
        .arg(serde_json::to_string(&manifest)?)
        .arg("NX")
        .query(&mut broker.con)?;
    // The same job submitted again keeps its run (and its rows); another one is refused.
    let run = if created.is_some() {
        manifest.run
    } else {
        let old = broker.existing_manifest()?;
        if !old.same_job(&manifest) {
            return Err(DistError::OtherManifest {
                job: broker.job.clone(),
                theirs: serde_json::to_string(&old)?,
                ours: serde_json::to_string(&manifest)?,
            });
        }
        old.run
    };
    let keys = Keys::new(&broker.job, &run);
    let made: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&keys.stream)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query(&mut broker.con);
    if let Err(e) = made
        && e.code() != Some("BUSYGROUP")
    {
        return Err(e.into());
    }

    // Entries have the ids 0-1, 0-2, ... and are added in order, so the last one says how
    // many a previous run added.
    let last: StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(&keys.stream)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query(&mut broker.con)?;
    let already = last.ids.first().map_or(Ok(0), |e| entry_seq(&e.id))?;
    for start in (already..files.len()).step_by(CHUNK) {
        let mut pipe = redis::pipe();
        for (i, path) in files.iter().enumerate().skip(start).take(CHUNK) {
            // The raw OS bytes: a name that is not UTF-8 reaches the worker unchanged.
            pipe.cmd("XADD")
                .arg(&keys.stream)
                .arg(format!("0-{}", i + 1))
                .arg("index")
                .arg(i)
                .arg("path")
                .arg(path.as_os_str().as_bytes())
                .ignore();
        }
        pipe.query::<()>(&mut broker.con)?;
    }
    // Folders that could not be walked are rows at once, after the files', as in analyze.
    if !walk_errors.is_empty() {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (j, e) in walk_errors.iter().enumerate() {
            let record = AnalyzeRecord::new(&e.path, Status::Error, None, Some(&e.reason));
            pipe.cmd("HSETNX")
                .arg(&keys.rows)
                .arg(files.len() + j)
                .arg(CsvLine.serialize(&record).map_err(DistError::Row)?)
                .ignore()
                .cmd("HSETNX")
                .arg(&keys.states)
                .arg(files.len() + j)
                .arg(Status::Error.as_str())
                .ignore();
        }
        pipe.query::<()>(&mut broker.con)?;
    }
    Ok(already)
}
