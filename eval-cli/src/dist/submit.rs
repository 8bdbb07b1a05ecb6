//! `eval-cli dist submit`: records the job's manifest and queues one stream entry per file;
//! a rerun adds only the entries that are missing, and queues again the files whose row
//! was lost after it was stored.

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use analyzer_core::batch::{self, Status, WalkError};
use redis::streams::{StreamInfoGroupsReply, StreamInfoStreamReply, StreamRangeReply};

use crate::record::AnalyzeRecord;
use crate::report::export::{CsvLine, Exporter};

use super::args::SubmitArgs;
use super::broker::Broker;
use super::error::{DistError, Result};
use super::keys::{
    CHUNK, FIRST_ROUND_END, GROUP, Keys, Manifest, entry_seq, id_text, manifest_key, stream_id,
};

pub(super) fn submit(args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let analyzer = args.settings.analyzer()?;
    let (files, walk_errors) = batch::collect_audio_files(&args.paths);
    let manifest = Manifest::new(&analyzer, &files, walk_errors.len())?;
    let mut broker = Broker::connect(&args.job)?;
    let queued = queue(&mut broker, manifest, &files, &walk_errors)?;
    eprintln!(
        "eval-cli: job {:?}: {} files queued ({} new), {} unreadable inputs",
        broker.job,
        files.len(),
        files.len() - queued.already.min(files.len()),
        walk_errors.len()
    );
    if queued.again > 0 {
        eprintln!(
            "eval-cli: job {:?}: re-queued {} files whose rows were missing",
            broker.job, queued.again
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What [`queue`] did.
struct Queued {
    /// Entries a previous `submit` had added.
    already: usize,
    /// Files queued again because their row was lost ([`requeue_lost`]).
    again: usize,
}

/// Records the job's `manifest` (or checks that the job on the broker has the same), then
/// queues the entries of `files` a previous `submit` did not add, the rows of the inputs
/// that could not be walked, and the files whose row was lost after it was stored.
fn queue(
    broker: &mut Broker,
    manifest: Manifest,
    files: &[PathBuf],
    walk_errors: &[WalkError],
) -> Result<Queued> {
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

    // Entries of the first round have the ids 0-1, 0-2, ... and are added in order, so the
    // last one says how many a previous run added.
    let last: StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(&keys.stream)
        .arg(id_text(FIRST_ROUND_END))
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query(&mut broker.con)?;
    let already = last.ids.first().map_or(Ok(0), |e| entry_seq(&e.id))?;
    for start in (already..files.len()).step_by(CHUNK) {
        let mut pipe = redis::pipe();
        for (i, path) in files.iter().enumerate().skip(start).take(CHUNK) {
            add_entry(&mut pipe, &keys, 0, i, path);
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
    let total = files.len() + walk_errors.len();
    let again = requeue_lost(broker, &keys, files, total)?;
    Ok(Queued { already, again })
}

/// Adds the entry of input index `index` in round `round` (0 the first): the id
/// `round-(index+1)`, so that every round carries the index in its id, and the path as its
/// raw OS bytes, so that a name that is not UTF-8 reaches the worker unchanged.
fn add_entry(pipe: &mut redis::Pipeline, keys: &Keys, round: u64, index: usize, path: &Path) {
    pipe.cmd("XADD")
        .arg(&keys.stream)
        .arg(format!("{round}-{}", index + 1))
        .arg("index")
        .arg(index)
        .arg("path")
        .arg(path.as_os_str().as_bytes())
        .ignore();
}

/// Queues again, in a new round, the files whose row is missing while no entry of theirs is
/// queued or in flight: rows deleted or evicted after they were stored, whose entries were
/// acknowledged with them and so would never be handed out again. The rows that are there
/// stay, and a file still queued or in flight is left to its entry. An entry moves from
/// queued to in flight to acknowledged with its row, and is read here in that order, so a
/// file a worker takes meanwhile is seen in one of the three and never queued twice. Its
/// `states` entry goes too, so that the new row's status replaces the old. Returns how
/// many files were queued again.
fn requeue_lost(
    broker: &mut Broker,
    keys: &Keys,
    files: &[PathBuf],
    total: usize,
) -> Result<usize> {
    if broker.rows_done(keys)? >= total {
        return Ok(0);
    }
    let acknowledged = acknowledged(broker, keys, files.len())?;
    let lost = rows_missing(broker, keys, &acknowledged)?;
    if lost.is_empty() {
        return Ok(0);
    }
    // Above every id the stream ever gave, deleted entries' included, as XADD requires.
    let stream: StreamInfoStreamReply = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(&keys.stream)
        .query(&mut broker.con)?;
    let round = stream_id(&stream.last_generated_id).map_or(1, |(ms, _)| ms.saturating_add(1));
    for chunk in lost.chunks(CHUNK) {
        let mut pipe = redis::pipe();
        for &i in chunk {
            add_entry(&mut pipe, keys, round, i, &files[i]);
            pipe.cmd("HDEL").arg(&keys.states).arg(i).ignore();
        }
        pipe.query::<()>(&mut broker.con)?;
    }
    Ok(lost.len())
}

/// The files of a job of `files` whose entry was handed out and acknowledged, in input
/// order: neither queued (read first) nor in flight (read next).
fn acknowledged(broker: &mut Broker, keys: &Keys, files: usize) -> Result<Vec<usize>> {
    let groups: StreamInfoGroupsReply = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(&keys.stream)
        .query(&mut broker.con)?;
    let handed_out = groups
        .groups
        .iter()
        .find(|g| g.name == GROUP)
        .and_then(|g| stream_id(&g.last_delivered_id))
        .unwrap_or((0, 0));
    // First-round entries after the last one handed out are queued still; so are those of
    // later rounds after it, read page by page (there are as many as rows were lost).
    let first_round_out = match handed_out {
        (0, seq) => usize::try_from(seq).unwrap_or(usize::MAX).min(files),
        _ => files,
    };
    let later_start = format!("({}", id_text(handed_out.max(FIRST_ROUND_END)));
    let mut on_the_way = entry_indices(later_start, |start| {
        let page: StreamRangeReply = redis::cmd("XRANGE")
            .arg(&keys.stream)
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(CHUNK)
            .query(&mut broker.con)?;
        Ok(page.ids.into_iter().map(|e| e.id).collect())
    })?;
    on_the_way.extend(entry_indices("-".to_string(), |start| {
        let page = broker.pending_page(keys, start)?;
        Ok(page.ids.into_iter().map(|p| p.id).collect())
    })?);
    Ok((0..first_round_out)
        .filter(|i| !on_the_way.contains(i))
        .collect())
}

/// The input indices of the entries `page` lists, page after page from `start` (an id
/// range's start), each page starting after the last id of the one before. Entries not
/// added by `submit` are left out.
fn entry_indices(
    start: String,
    mut page: impl FnMut(&str) -> Result<Vec<String>>,
) -> Result<HashSet<usize>> {
    let mut indices = HashSet::new();
    let mut start = start;
    loop {
        let ids = page(&start)?;
        indices.extend(
            ids.iter()
                .filter_map(|id| entry_seq(id).ok())
                .map(|s| s - 1),
        );
        match ids.last() {
            Some(last) if ids.len() >= CHUNK => start = format!("({last}"),
            _ => return Ok(indices),
        }
    }
}

/// Which of `indices` have no row, in their order.
fn rows_missing(broker: &mut Broker, keys: &Keys, indices: &[usize]) -> Result<Vec<usize>> {
    let mut missing = Vec::new();
    for chunk in indices.chunks(CHUNK) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.cmd("HEXISTS").arg(&keys.rows).arg(i);
        }
        let stored: Vec<bool> = pipe.query(&mut broker.con)?;
        missing.extend(
            chunk
                .iter()
                .zip(stored)
                .filter(|(_, s)| !s)
                .map(|(i, _)| *i),
        );
    }
    Ok(missing)
}
