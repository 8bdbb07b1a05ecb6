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
use super::error::{DistError, Result, SubmitFolderError};
use super::keys::{
    CHUNK, FIRST_ROUND_END, GROUP, Keys, Manifest, entry_seq, id_text, manifest_key, stream_id,
};

pub(super) fn submit(args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let analyzer = args.settings.analyzer()?;
    let (files, walk_errors) = batch::collect_audio_files(&args.paths);
    let submitted_from = if files.iter().any(|f| f.is_relative()) {
        Some(submit_folder()?)
    } else {
        None
    };
    let manifest = Manifest::new(&analyzer, &files, walk_errors.len(), submitted_from)?;
    let mut broker = Broker::connect(&args.job)?;
    let queued = queue(&mut broker, manifest, &files, &walk_errors)?;
    eprintln!(
        "eval-cli: job {:?}: {} files queued ({} new), {} unreadable inputs",
        broker.job,
        files.len(),
        queued.added,
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

/// The folder this `submit` runs in, which relative paths are relative to: the manifest
/// records it so that a worker started anywhere reads them there.
fn submit_folder() -> Result<PathBuf> {
    let folder = std::env::current_dir()
        .map_err(|e| DistError::SubmitFolder(SubmitFolderError::Unreadable(e)))?;
    if folder.to_str().is_none() {
        return Err(DistError::SubmitFolder(SubmitFolderError::NotUtf8(folder)));
    }
    Ok(folder)
}

/// What [`queue`] did.
struct Queued {
    /// First-round entries this `submit` added (the rest were there already).
    added: usize,
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
    // Made at the stream's last id: for a new job that is before every entry; for a job
    // whose group was deleted (by hand), the entries already there count as handed out,
    // and [`requeue_lost`] below queues again only the files that have no row.
    let made: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&keys.stream)
        .arg(GROUP)
        .arg("$")
        .arg("MKSTREAM")
        .query(&mut broker.con);
    if let Err(e) = made
        && e.code() != Some("BUSYGROUP")
    {
        return Err(e.into());
    }

    // Entries of the first round have the ids 0-1, 0-2, ... and are added in order, so the
    // last one says how many a previous run added: a rerun sends none of those again.
    let last: StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(&keys.stream)
        .arg(id_text(FIRST_ROUND_END))
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query(&mut broker.con)?;
    let already = last.ids.first().map_or(Ok(0), |e| entry_seq(&e.id))?;
    let added = add_first_round(broker, &keys, files, already)?;
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
    Ok(Queued { added, again })
}

/// Adds the first-round entries of `files` from index `from` on ([`FIRST_ROUND_SCRIPT`]),
/// [`CHUNK`] to a round trip, and returns how many this call added. `from` is only where to
/// start sending: entries that another `submit` of the same job added since it was read are
/// skipped, not refused. Those carry the same paths, since both manifests list the same
/// sorted files.
fn add_first_round(
    broker: &mut Broker,
    keys: &Keys,
    files: &[PathBuf],
    from: usize,
) -> Result<usize> {
    let mut added = 0;
    for start in (from..files.len()).step_by(CHUNK) {
        let mut script = redis::cmd("EVAL");
        script
            .arg(FIRST_ROUND_SCRIPT)
            .arg(1)
            .arg(&keys.stream)
            .arg(id_text(FIRST_ROUND_END));
        for (i, path) in files.iter().enumerate().skip(start).take(CHUNK) {
            entry_args(&mut script, i, path);
        }
        added += script.query::<usize>(&mut broker.con)?;
    }
    Ok(added)
}

/// Adds the first-round entries of ARGV (after ARGV[1], [`FIRST_ROUND_END`]: triples of
/// [`entry_args`], ascending) that the stream (KEYS[1]) lacks, and returns how many. In one
/// script, so that two `submit`s at once never both add the same id: the second would be
/// refused by `XADD` ("equal or smaller than the target stream top item").
const FIRST_ROUND_SCRIPT: &str = r"
local top = redis.call('XREVRANGE', KEYS[1], ARGV[1], '-', 'COUNT', 1)
local have = 0
if top[1] then have = tonumber(string.match(top[1][1], '%-(%d+)$')) end
local added = 0
for i = 2, #ARGV, 3 do
  if tonumber(ARGV[i]) > have then
    redis.call('XADD', KEYS[1], '0-' .. ARGV[i], 'index', ARGV[i + 1], 'path', ARGV[i + 2])
    added = added + 1
  end
end
return added
";

/// Queues again, in round ARGV[2], the files of ARGV (after ARGV[2]: triples of
/// [`entry_args`], ascending) that have no row (KEYS[3]), and drops their status (KEYS[2]),
/// but only while the stream (KEYS[1]) gave no id since ARGV[1], its last id before the
/// caller looked for them: any entry added since (another `submit` queueing them again)
/// makes that finding stale, and the script adds nothing and returns nil. Else it
/// returns how many it added and the stream's last id. In one script, so that two
/// `submit`s at once never queue a file twice.
const REQUEUE_SCRIPT: &str = r"
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local last
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then last = info[i + 1] end
end
if last ~= ARGV[1] then return false end
local added = 0
for i = 3, #ARGV, 3 do
  if redis.call('HEXISTS', KEYS[3], ARGV[i + 1]) == 0 then
    last = redis.call('XADD', KEYS[1], ARGV[2] .. '-' .. ARGV[i],
      'index', ARGV[i + 1], 'path', ARGV[i + 2])
    redis.call('HDEL', KEYS[2], ARGV[i + 1])
    added = added + 1
  end
end
return {added, last}
";

/// The arguments of the entry of input index `index` for [`FIRST_ROUND_SCRIPT`] and
/// [`REQUEUE_SCRIPT`]: the sequence number of its id `ROUND-(index+1)`, so that every round
/// carries the index in its id, the index, and the path as its raw OS bytes, so that a name
/// that is not UTF-8 reaches the worker unchanged.
fn entry_args(script: &mut redis::Cmd, index: usize, path: &Path) {
    script
        .arg(index + 1)
        .arg(index)
        .arg(path.as_os_str().as_bytes());
}

/// Queues again, in a new round, the files whose row is missing while no entry of theirs is
/// queued or in flight: rows deleted or evicted after they were stored, whose entries were
/// acknowledged with them and so would never be handed out again. The rows that are there
/// stay, and a file still queued or in flight is left to its entry. An entry moves from
/// queued to in flight to acknowledged with its row, and is read here in that order, so a
/// file a worker takes meanwhile is seen in one of the three and never queued twice. The
/// stream's last id is read before all that, and [`REQUEUE_SCRIPT`] adds only while it is
/// still the last: when another `submit` queued files meanwhile, the files are looked at
/// again, so two at once never queue a file twice. Its `states` entry goes too, so that the
/// new row's status replaces the old. Returns how many files were queued again.
fn requeue_lost(
    broker: &mut Broker,
    keys: &Keys,
    files: &[PathBuf],
    total: usize,
) -> Result<usize> {
    let mut again = 0;
    // Only another `submit` that queued files meanwhile sends this round again, and those
    // files are on their way the next time round: this ends.
    loop {
        if broker.rows_done(keys)? >= total {
            return Ok(again);
        }
        let stream: StreamInfoStreamReply = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(&keys.stream)
            .query(&mut broker.con)?;
        let acknowledged = acknowledged(broker, keys, files.len())?;
        let lost = rows_missing(broker, keys, &acknowledged)?;
        if lost.is_empty() {
            return Ok(again);
        }
        let (added, current) = add_round(broker, keys, files, &lost, stream.last_generated_id)?;
        again += added;
        if current {
            return Ok(again);
        }
    }
}

/// Adds the entries of the files `lost` ([`REQUEUE_SCRIPT`], [`CHUNK`] to a round trip) in
/// the round after `last`, the stream's last id when they were found lost, which every
/// chunk checks is still the last: how many it added, and whether `last` was still current
/// (false: the stream grew meanwhile, and the rest was not added).
fn add_round(
    broker: &mut Broker,
    keys: &Keys,
    files: &[PathBuf],
    lost: &[usize],
    last: String,
) -> Result<(usize, bool)> {
    // Above every id the stream ever gave, deleted entries' included, as XADD requires.
    let round = stream_id(&last).map_or(1, |(ms, _)| ms.saturating_add(1));
    let mut last = last;
    let mut added = 0;
    for chunk in lost.chunks(CHUNK) {
        let mut script = redis::cmd("EVAL");
        script
            .arg(REQUEUE_SCRIPT)
            .arg(3)
            .arg(&keys.stream)
            .arg(&keys.states)
            .arg(&keys.rows)
            .arg(&last)
            .arg(round);
        for &i in chunk {
            entry_args(&mut script, i, &files[i]);
        }
        let Some((n, now)) = script.query::<Option<(usize, String)>>(&mut broker.con)? else {
            return Ok((added, false));
        };
        added += n;
        last = now;
    }
    Ok((added, true))
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
