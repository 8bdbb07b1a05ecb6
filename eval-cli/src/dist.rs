//! `eval-cli dist`: one job analysed by any number of machines through a Redis Stream, with
//! the rows of a single-machine `analyze`.
//!
//! Why a broker: a catalogue that outgrows one machine is shared out dynamically, and a
//! machine that dies loses nothing. The job's manifest lives at `tempo-scale:job:NAME:manifest`
//! and everything else under `tempo-scale:job:NAME:run:RUN:`, where RUN is the run id the
//! first `submit` drew (128 random bits). A broker that lost the job (a restart without
//! persistence) and got it submitted again gives it a new run id, so rows left by the old
//! run, or stored late by a worker of the old run, are never merged into the new one.
//!
//! - `manifest`: JSON of [`Manifest`] (run id, file count, a hash of the sorted list,
//!   analyzer version and settings), written once; a second `submit` must match it.
//! - `stream`: one entry per file, with the explicit id `0-(index+1)` and the path as its
//!   raw OS bytes, so that a rerun of `submit` adds only what is missing and never a
//!   duplicate. Its consumer group `workers` hands each entry to one slot at a time
//!   (`XREADGROUP COUNT 1`, no prefetch).
//! - `rows`: the analyze CSV line of each input index, and `states` its status. A slot
//!   stores both and acknowledges the entry in one script ([`STORE_SCRIPT`]) that first
//!   checks that the manifest still names the slot's run; `HSETNX` writes a row once even
//!   when two workers raced on a file (at-least-once execution, exactly-once rows).
//!
//! A slot refreshes its claim while it analyses (`XCLAIM ... JUSTID`, which does not count
//! as a delivery), so a slow file is never stolen; an entry idle for `--reclaim-after` is
//! taken over with `XAUTOCLAIM`. An entry delivered more than [`MAX_DELIVERIES`] times has
//! killed that many workers and becomes an `error` row. `merge` reads `rows` in input order:
//! the bytes of `eval-cli analyze --out`. `work`, `status` and `merge` ride out a broker
//! restart for `--broker-retry` ([`with_reconnects`]).
//!
//! One file: the commands share the key layout, the store script and the reconnect loop,
//! and each is a short function over them.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use analyzer_core::batch::{self, Batch, Status};
use analyzer_core::{Analyzer, Stage, StopSignal};
use anyhow::{Context, bail};
use redis::streams::{
    StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamPendingReply, StreamRangeReply,
    StreamReadReply,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::flags;
use crate::record::{self, AnalyzeRecord};
use crate::report::export::{CsvLine, Exporter};
use crate::runner;
use crate::shard;

/// The consumer group every worker reads through.
const GROUP: &str = "workers";
/// Deliveries after which an entry is given up: each one killed its worker.
pub const MAX_DELIVERIES: usize = 3;
/// Entries added to the stream per round trip by `submit`, and rows read per round trip by
/// `merge`.
const CHUNK: usize = 1000;
/// How long a slot waits for a new entry before it looks again at the job (default of the
/// hidden `--read-block-ms`). A slot that sees the job complete wakes the others of its
/// process at once, so this is only the delay seen by other machines' idle slots.
const READ_BLOCK_MS: u64 = 500;
/// How far back `dist status` looks to measure the rate (and how long store times are kept).
const RATE_WINDOW_MS: u64 = 60_000;
/// Exit status after Ctrl-C or SIGTERM.
const EXIT_CANCELLED: u8 = 130;

/// `eval-cli dist`: the commands of a distributed job.
#[derive(Debug, clap::Subcommand)]
pub enum DistCommand {
    /// Record a job and queue one entry per file (safe to rerun).
    Submit(SubmitArgs),
    /// Analyse a job's files on this machine until the job is complete.
    Work(WorkArgs),
    /// Files done, failed, in flight and waiting, and who holds what.
    Status(StatusArgs),
    /// Write a complete job's rows in input order: the CSV of `analyze --out`.
    Merge(MergeArgs),
}

/// The broker and job every `dist` command names.
#[derive(Debug, clap::Args)]
pub struct JobArgs {
    /// The Redis holding the job, `redis://HOST:PORT`.
    #[arg(long, value_name = "URL")]
    broker: String,
    /// The job's name.
    #[arg(long, value_name = "NAME")]
    job: String,
}

/// Flags of `eval-cli dist submit`.
#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    job: JobArgs,
    /// The analyzer settings; a job's workers must use the ones it was submitted with.
    #[command(flatten)]
    settings: flags::AnalyzerArgs,
    /// Audio files and folders, walked and sorted as `analyze` does.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
}

/// Flags of `eval-cli dist work`.
#[derive(Debug, clap::Args)]
pub struct WorkArgs {
    #[command(flatten)]
    job: JobArgs,
    /// The analyzer settings; a job's workers must use the ones it was submitted with.
    #[command(flatten)]
    settings: flags::AnalyzerArgs,
    /// Files analysed at once on this machine, one per slot [default: one per core, fewer
    /// if memory is short].
    #[arg(long, value_name = "N", value_parser = flags::parse_workers)]
    workers: Option<usize>,
    /// Take over a file whose worker has not shown a sign of life for SECS seconds.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = flags::parse_timeout)]
    reclaim_after: Duration,
    /// Keep waiting for work when the job is complete, until Ctrl-C.
    #[arg(long)]
    follow: bool,
    #[command(flatten)]
    retry: RetryArgs,
    /// The submitter's folder FROM is TO on this machine (repeatable; the first match wins).
    /// Files are read from TO; rows keep the submitted path.
    #[arg(long, value_name = "FROM=TO", value_parser = parse_path_map)]
    path_map: Vec<PathMap>,
    /// One JSON object per line on stderr as entries are claimed, kept alive, stored, and
    /// when the broker is lost and found again (for logs and tests).
    #[arg(long)]
    events: bool,
    /// Milliseconds an idle slot waits for a new entry before it looks at the job again
    /// (for tests: a long wait shows that completion does not wait for it).
    #[arg(long, hide = true, value_name = "MS", default_value_t = READ_BLOCK_MS,
          value_parser = clap::value_parser!(u64).range(1..))]
    read_block_ms: u64,
    /// Internal, for tests: a file whose name starts with `gate` holds its slot until
    /// `NAME.open` appears beside it (gate.rs).
    #[arg(long, hide = true)]
    test_gates: bool,
}

/// How long `work`, `status` and `merge` wait for a broker that went away.
#[derive(Debug, clap::Args)]
pub struct RetryArgs {
    /// When the broker goes away (a restart, the network), keep reconnecting for SECS
    /// seconds before giving up; a worker stores the file in hand once it is back.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = flags::parse_timeout)]
    broker_retry: Duration,
}

/// Flags of `eval-cli dist status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    job: JobArgs,
    #[command(flatten)]
    retry: RetryArgs,
    /// One JSON object on stdout, for scripts.
    #[arg(long)]
    json: bool,
}

/// Flags of `eval-cli dist merge`.
#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    #[command(flatten)]
    job: JobArgs,
    #[command(flatten)]
    retry: RetryArgs,
    /// The CSV to write (atomically, once the job is complete).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Fail at once when the job is not complete, instead of waiting.
    #[arg(long)]
    no_wait: bool,
}

/// What a job is: a second `submit` or a worker must agree with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The run id (32 hex digits) drawn by the `submit` that created the job. The keys of
    /// the job's stream and rows include it, so a job submitted again under the same name
    /// after the broker lost it never meets the rows of the old run.
    pub run: String,
    /// The analyzer's version (the crate version of this build).
    pub version: String,
    /// The analyzer's fingerprint (`AnalyzerConfig::fingerprint`: version, settings, model).
    pub settings: String,
    /// Files queued, one stream entry each.
    pub files: usize,
    /// Inputs that could not be walked: rows written by `submit`, after the files'.
    pub walk_errors: usize,
    /// A hash of the sorted file list ([`shard::list_hash`]).
    pub list_hash: String,
}

impl Manifest {
    fn new(analyzer: &Analyzer, files: &[PathBuf], walk_errors: usize) -> anyhow::Result<Self> {
        Ok(Manifest {
            run: new_run_id()?,
            version: env!("CARGO_PKG_VERSION").to_string(),
            settings: settings_of(analyzer),
            files: files.len(),
            walk_errors,
            list_hash: shard::list_hash(files),
        })
    }

    /// Whether `other` is the same job whatever its run id: submitting it again is a no-op.
    fn same_job(&self, other: &Manifest) -> bool {
        let mut ours = self.clone();
        ours.run.clone_from(&other.run);
        ours == *other
    }

    /// Rows of the complete job.
    fn total(&self) -> usize {
        self.files + self.walk_errors
    }
}

/// 128 random bits from the OS, in hex: no two submits draw the same run id.
fn new_run_id() -> anyhow::Result<String> {
    let mut bits = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bits))
        .context("cannot draw a run id from /dev/urandom")?;
    Ok(bits.iter().map(|b| format!("{b:02x}")).collect())
}

fn settings_of(analyzer: &Analyzer) -> String {
    analyzer.fingerprint()
}

/// The key of a job's manifest, the one key outside its run (it says which run is current).
fn manifest_key(job: &str) -> String {
    format!("tempo-scale:job:{job}:manifest")
}

/// The Redis keys of one run of a job.
struct Keys {
    manifest: String,
    /// The run these keys belong to.
    run: String,
    stream: String,
    rows: String,
    states: String,
    finished_at: String,
}

impl Keys {
    fn new(job: &str, run: &str) -> Self {
        let prefix = format!("tempo-scale:job:{job}:run:{run}:");
        Keys {
            manifest: manifest_key(job),
            run: run.to_string(),
            stream: format!("{prefix}stream"),
            rows: format!("{prefix}rows"),
            states: format!("{prefix}states"),
            finished_at: format!("{prefix}finished_at"),
        }
    }
}

/// Stores a row and acknowledges its entry, only while the manifest (KEYS[1]) names the
/// slot's run (ARGV[1]): a worker that held a row across a broker restart and a new submit
/// of the job stores nothing (the script returns 0). In one script, so atomic. `HSETNX`
/// keeps the first row of an index, `XACK` is idempotent: repeating it is harmless. The
/// store times (KEYS[5]) are kept for the last RATE_WINDOW only (ARGV[8] is its start).
const STORE_SCRIPT: &str = r"
local manifest = redis.call('GET', KEYS[1])
if not manifest or cjson.decode(manifest).run ~= ARGV[1] then return 0 end
redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3])
redis.call('HSETNX', KEYS[3], ARGV[2], ARGV[4])
redis.call('XACK', KEYS[4], ARGV[5], ARGV[6])
redis.call('ZADD', KEYS[5], ARGV[7], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. ARGV[8])
return 1
";

/// A connection to the broker of a job.
struct Broker {
    con: redis::Connection,
    url: String,
    job: String,
}

impl Broker {
    fn connect(args: &JobArgs) -> anyhow::Result<Self> {
        let client = redis::Client::open(args.broker.as_str())
            .with_context(|| format!("invalid broker URL {}", args.broker))?;
        let con = client
            .get_connection_with_timeout(Duration::from_secs(10))
            .with_context(|| format!("cannot connect to the broker at {}", args.broker))?;
        Ok(Broker {
            con,
            url: args.broker.clone(),
            job: args.job.clone(),
        })
    }

    /// A connection made like [`Broker::connect`], tried again while the broker is away.
    fn connect_retrying(args: &JobArgs, retry: &Retry) -> anyhow::Result<Self> {
        with_reconnects(retry, |_| Broker::connect(args))
    }

    /// Another connection to the same job.
    fn reconnect(&self) -> anyhow::Result<Self> {
        Broker::connect(&JobArgs {
            broker: self.url.clone(),
            job: self.job.clone(),
        })
    }

    /// Runs `step` with [`with_reconnects`], on a new connection after the broker was lost.
    fn with_reconnects<T>(
        &mut self,
        retry: &Retry,
        mut step: impl FnMut(&mut Broker) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        with_reconnects(retry, |failures| {
            if failures > 0 {
                *self = self.reconnect()?;
            }
            step(self)
        })
    }

    fn manifest(&mut self) -> anyhow::Result<Option<Manifest>> {
        let json: Option<String> = redis::cmd("GET")
            .arg(manifest_key(&self.job))
            .query(&mut self.con)?;
        json.map(|j| serde_json::from_str(&j).context("the job's manifest is not readable"))
            .transpose()
    }

    fn existing_manifest(&mut self) -> anyhow::Result<Manifest> {
        match self.manifest()? {
            Some(m) => Ok(m),
            None => bail!(
                "no job {:?} at {} (run `dist submit` first)",
                self.job,
                self.url
            ),
        }
    }

    /// The job's manifest and the keys of the run it names.
    fn current_run(&mut self) -> anyhow::Result<(Manifest, Keys)> {
        let manifest = self.existing_manifest()?;
        let keys = Keys::new(&self.job, &manifest.run);
        Ok((manifest, keys))
    }

    /// Fails, saying why, unless the manifest still names the run of `keys`.
    fn ensure_run(&mut self, keys: &Keys) -> anyhow::Result<()> {
        match self.manifest()? {
            Some(m) if m.run == keys.run => Ok(()),
            Some(m) => bail!(
                "job {:?} at {} was submitted again (run {} replaced run {}); rows of run {} \
                 are not part of it: start again for the new run",
                self.job,
                self.url,
                m.run,
                keys.run,
                keys.run
            ),
            None => bail!(
                "job {:?} (run {}) is gone from {} (a broker restarted without persistence?); \
                 submit it again",
                self.job,
                keys.run,
                self.url
            ),
        }
    }

    /// The broker's id of this connection.
    fn client_id(&mut self) -> anyhow::Result<u64> {
        Ok(redis::cmd("CLIENT").arg("ID").query(&mut self.con)?)
    }

    fn rows_done(&mut self, keys: &Keys) -> anyhow::Result<usize> {
        Ok(redis::cmd("HLEN").arg(&keys.rows).query(&mut self.con)?)
    }

    fn rows_failed(&mut self, keys: &Keys) -> anyhow::Result<usize> {
        let states: Vec<String> = redis::cmd("HVALS").arg(&keys.states).query(&mut self.con)?;
        Ok(states.iter().filter(|s| *s != Status::Ok.as_str()).count())
    }
}

/// `--broker-retry` in force, for [`with_reconnects`].
struct Retry<'a> {
    /// How long a lost broker is waited for, from the first failure.
    budget: Duration,
    /// The broker, for the messages.
    url: &'a str,
    /// Ends the wait early (a worker's Ctrl-C).
    cancel: Option<&'a AtomicBool>,
}

impl RetryArgs {
    fn of<'a>(&self, job: &'a JobArgs) -> Retry<'a> {
        Retry {
            budget: self.broker_retry,
            url: &job.broker,
            cancel: None,
        }
    }
}

/// Runs `attempt` until it ends other than with a lost broker ([`broker_unreachable`]):
/// then it runs again after a pause (growing to 2 s), until `retry.budget` is spent since
/// the first failure, when the error says so. `attempt` gets the number of failures so far:
/// after one, its connections are dead and it opens new ones. The one reconnect loop of
/// `work`, `status` and `merge`.
fn with_reconnects<T>(
    retry: &Retry,
    mut attempt: impl FnMut(usize) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let mut lost_at: Option<Instant> = None;
    let mut failures = 0;
    let mut pause = Duration::from_millis(100);
    loop {
        let err = match attempt(failures) {
            Err(err) if broker_unreachable(&err) => err,
            ended => return ended,
        };
        let lost_at = *lost_at.get_or_insert_with(|| {
            eprintln!(
                "eval-cli: warning: broker lost ({err:#}); reconnecting for up to {:?}",
                retry.budget
            );
            Instant::now()
        });
        failures += 1;
        let Some(left) = retry.budget.checked_sub(lost_at.elapsed()) else {
            return Err(err.context(format!(
                "the broker at {} stayed unreachable for {:?} (--broker-retry)",
                retry.url, retry.budget
            )));
        };
        if retry.cancel.is_some_and(|c| c.load(Ordering::SeqCst)) {
            return Err(err.context("cancelled while the broker was unreachable"));
        }
        thread::sleep(pause.min(left));
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// Runs `eval-cli dist ...`.
pub fn run(command: DistCommand) -> anyhow::Result<ExitCode> {
    match command {
        DistCommand::Submit(args) => submit(args),
        DistCommand::Work(args) => work(args),
        DistCommand::Status(args) => status(args),
        DistCommand::Merge(args) => merge(args),
    }
}

fn submit(args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let analyzer = args.settings.analyzer()?;
    let (files, walk_errors) = batch::collect_audio_files(&args.paths);
    let manifest = Manifest::new(&analyzer, &files, walk_errors.len())?;
    let mut broker = Broker::connect(&args.job)?;
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
            bail!(
                "job {:?} already exists with another manifest (theirs: {}; ours: {}); \
                 pick another --job name",
                broker.job,
                serde_json::to_string(&old)?,
                serde_json::to_string(&manifest)?
            );
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
                .arg(CsvLine.serialize(&record)?)
                .ignore()
                .cmd("HSETNX")
                .arg(&keys.states)
                .arg(files.len() + j)
                .arg(Status::Error.as_str())
                .ignore();
        }
        pipe.query::<()>(&mut broker.con)?;
    }
    eprintln!(
        "eval-cli: job {:?}: {} files queued ({} new), {} unreadable inputs",
        broker.job,
        files.len(),
        files.len() - already.min(files.len()),
        walk_errors.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// The sequence number of an entry id `0-N`.
fn entry_seq(id: &str) -> anyhow::Result<usize> {
    id.strip_prefix("0-")
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("stream entry {id} was not added by `dist submit`"))
}

/// What the slots of one `dist work` share.
struct Worker {
    analyzer: Analyzer,
    /// The keys of the run the worker was started for: it stores rows of no other.
    keys: Keys,
    total: usize,
    reclaim_after: Duration,
    broker_retry: Duration,
    path_maps: Vec<PathMap>,
    follow: bool,
    events: bool,
    read_block_ms: u64,
    test_gates: bool,
    cancel: Arc<AtomicBool>,
    /// One per slot, by slot number.
    idle: Vec<IdleSlot>,
}

/// How to wake a slot that waits for new entries.
struct IdleSlot {
    /// The broker's client id of the slot's connection, for `CLIENT UNBLOCK` (renewed when
    /// the slot reconnects).
    client: AtomicU64,
    /// Set from just before the slot's last look at the job until its wait ends.
    waiting: AtomicBool,
}

impl Worker {
    /// Wakes the slots waiting for new entries (`CLIENT UNBLOCK`: the read returns empty
    /// and the slot looks at the job again), so that a worker exits when its job is
    /// complete, not when its slots' waits run out. A slot that was about to wait when the
    /// first wake-up came is caught by the next one. Without a connection, or where the
    /// broker refuses the command, the slots find out at the end of their wait instead.
    fn wake_idle_slots(&self, waker: &mut anyhow::Result<Broker>) {
        let Ok(waker) = waker else { return };
        // After one wait, every slot has looked at the job again by itself.
        let deadline = Instant::now() + Duration::from_millis(self.read_block_ms);
        loop {
            let waiting: Vec<u64> = self
                .idle
                .iter()
                .filter(|slot| slot.waiting.load(Ordering::SeqCst))
                .map(|slot| slot.client.load(Ordering::SeqCst))
                .collect();
            if waiting.is_empty() || Instant::now() >= deadline {
                return;
            }
            for id in waiting {
                let woken: redis::RedisResult<usize> = redis::cmd("CLIENT")
                    .arg("UNBLOCK")
                    .arg(id)
                    .query(&mut waker.con);
                if woken.is_err() {
                    return;
                }
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// One JSON line on stderr, with `--events`.
    fn event(&self, value: serde_json::Value) {
        if self.events {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{value}");
        }
    }

    /// Where this machine reads a submitted path: the first `--path-map` whose FROM is a
    /// prefix of it (component-wise), else the path itself.
    fn local_path(&self, submitted: &Path) -> PathBuf {
        self.path_maps
            .iter()
            .find_map(|m| {
                submitted
                    .strip_prefix(&m.from)
                    .ok()
                    .map(|rest| m.to.join(rest))
            })
            .unwrap_or_else(|| submitted.to_path_buf())
    }
}

/// `--path-map FROM=TO`: the submitter's folder FROM is TO on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathMap {
    from: PathBuf,
    to: PathBuf,
}

fn parse_path_map(s: &str) -> Result<PathMap, String> {
    match s.split_once('=') {
        Some((from, to)) if !from.is_empty() && !to.is_empty() => Ok(PathMap {
            from: PathBuf::from(from),
            to: PathBuf::from(to),
        }),
        _ => Err(format!("expected FROM=TO, two non-empty paths (got {s:?})")),
    }
}

fn work(args: WorkArgs) -> anyhow::Result<ExitCode> {
    let analyzer = args.settings.analyzer()?;
    let mut broker = Broker::connect(&args.job)?;
    let (manifest, keys) = broker.current_run()?;
    let version = env!("CARGO_PKG_VERSION");
    if manifest.version != version || manifest.settings != settings_of(&analyzer) {
        bail!(
            "job {:?} was submitted with analyzer {} and settings {}; this worker has {} and {}: \
             refusing to mix results",
            broker.job,
            manifest.version,
            manifest.settings,
            version,
            settings_of(&analyzer)
        );
    }
    let slots = flags::resolve_workers(args.workers);
    let mut brokers = Vec::with_capacity(slots);
    let mut idle = Vec::with_capacity(slots);
    for _ in 0..slots {
        let mut con = broker.reconnect()?;
        idle.push(IdleSlot {
            client: AtomicU64::new(con.client_id()?),
            waiting: AtomicBool::new(false),
        });
        brokers.push((con, broker.reconnect()?));
    }
    let worker = Worker {
        analyzer,
        keys,
        total: manifest.total(),
        reclaim_after: args.reclaim_after,
        broker_retry: args.retry.broker_retry,
        path_maps: args.path_map,
        follow: args.follow,
        events: args.events,
        read_block_ms: args.read_block_ms,
        test_gates: args.test_gates,
        cancel: Arc::new(AtomicBool::new(false)),
        idle,
    };
    runner::install_signal_handler(Arc::clone(&worker.cancel));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".to_string());
    let results: Vec<anyhow::Result<()>> = thread::scope(|s| {
        let handles: Vec<_> = brokers
            .into_iter()
            .enumerate()
            .map(|(slot, (con, beat))| {
                let consumer = format!("{host}:{}:{slot}", std::process::id());
                let worker = &worker;
                let mut waker = broker.reconnect();
                s.spawn(move || {
                    let result = Slot {
                        index: slot,
                        broker: con,
                        beat,
                        consumer,
                        cursor: "0-0".to_string(),
                    }
                    .run(worker);
                    if result.is_err() {
                        // One broken slot stops the others: the run is reported as failed.
                        worker.cancel.store(true, Ordering::SeqCst);
                    }
                    // The job is complete (or cancelled): the other slots may be waiting
                    // for new entries that will never come.
                    worker.wake_idle_slots(&mut waker);
                    result
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a slot panicked")))
            })
            .collect()
    });
    for result in results {
        result?;
    }
    if worker.cancel.load(Ordering::SeqCst) {
        eprintln!("eval-cli: cancelled; the current files were finished and stored");
        return Ok(ExitCode::from(EXIT_CANCELLED));
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether `err` says the broker went away (restart, network), so that reconnecting and
/// repeating the step is right; any other error (a bad reply, a script error) is final.
fn broker_unreachable(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<redis::RedisError>())
        .any(|e| {
            e.is_io_error()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
                || e.is_timeout()
                // A restarted broker answers LOADING while it replays its append-only file.
                || e.code() == Some("LOADING")
        })
}

/// A row made on this machine, waiting to be stored.
struct Finished {
    id: String,
    index: usize,
    record: AnalyzeRecord,
}

/// One file at a time from the group, as one consumer.
struct Slot {
    /// The slot's number on this machine.
    index: usize,
    broker: Broker,
    /// A second connection, for the heartbeat while the file is analysed.
    beat: Broker,
    consumer: String,
    /// Where the next `XAUTOCLAIM` scan of the pending list starts.
    cursor: String,
}

impl Slot {
    /// Takes, analyses and stores entries until the job is complete (or cancelled). When the
    /// broker goes away, the slot reconnects for up to `--broker-retry` and repeats the step
    /// it was in; a row made before the broker went away is stored after it is back, unless
    /// the job was submitted again meanwhile (then the slot fails and stores nothing).
    fn run(mut self, worker: &Worker) -> anyhow::Result<()> {
        let mut unstored: Option<Finished> = None;
        loop {
            if unstored.is_none() && worker.cancel.load(Ordering::SeqCst) {
                return Ok(());
            }
            let url = self.broker.url.clone();
            let retry = Retry {
                budget: worker.broker_retry,
                url: &url,
                cancel: Some(&worker.cancel),
            };
            let complete = with_reconnects(&retry, |failures| {
                if failures > 0 {
                    self.reconnect(worker, failures == 1)?;
                }
                self.step(worker, &mut unstored)
            });
            match complete {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                // An error that is not about the connection may be about the run: say so.
                Err(err) if !broker_unreachable(&err) => {
                    return Err(self.broker.ensure_run(&worker.keys).err().unwrap_or(err));
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Stores the row in hand, else takes the next entry and analyses it into `unstored`;
    /// says whether the job is complete. A row that could not be stored stays in hand.
    fn step(&mut self, worker: &Worker, unstored: &mut Option<Finished>) -> anyhow::Result<bool> {
        match unstored.take() {
            Some(finished) => {
                let stored = self.store(worker, &finished);
                if stored.is_err() {
                    *unstored = Some(finished);
                }
                stored.map(|()| false)
            }
            None => self.next_step(worker, unstored),
        }
    }

    /// Takes the next entry and analyses it into `finished`, or says whether the job is
    /// complete when there is none.
    fn next_step(
        &mut self,
        worker: &Worker,
        finished: &mut Option<Finished>,
    ) -> anyhow::Result<bool> {
        match self.next_entry(worker)? {
            Some((entry, deliveries)) => {
                *finished = Some(self.analyze_entry(worker, &entry, deliveries)?);
                Ok(false)
            }
            None => Ok(!worker.follow && self.broker.rows_done(&worker.keys)? >= worker.total),
        }
    }

    /// One try at new connections for the slot and its heartbeat ([`with_reconnects`]
    /// repeats it). The first command is the test, as a broker replaying its append-only
    /// file accepts connections before it answers. Whether the run is still the job's is
    /// for the store script to say, at the only moment it matters.
    fn reconnect(&mut self, worker: &Worker, first_try: bool) -> anyhow::Result<()> {
        if first_try {
            worker.event(json!({"event": "broker_lost", "consumer": self.consumer}));
        }
        let mut con = self.broker.reconnect()?;
        con.manifest()?;
        let beat = self.broker.reconnect()?;
        if let Ok(id) = con.client_id() {
            worker.idle[self.index].client.store(id, Ordering::SeqCst);
        }
        self.broker = con;
        self.beat = beat;
        worker.event(json!({"event": "reconnected", "consumer": self.consumer}));
        Ok(())
    }

    /// An entry whose worker went silent, else a new one (waiting a little for it); with
    /// how many times it has been delivered, this time included.
    fn next_entry(&mut self, worker: &Worker) -> anyhow::Result<Option<(StreamId, usize)>> {
        let keys = &worker.keys;
        let claimed: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&keys.stream)
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(worker.reclaim_after.as_millis() as u64)
            .arg(&self.cursor)
            .arg("COUNT")
            .arg(1)
            .query(&mut self.broker.con)?;
        self.cursor = claimed.next_stream_id;
        if let Some(entry) = claimed.claimed.into_iter().next() {
            let pending: StreamPendingCountReply = redis::cmd("XPENDING")
                .arg(&keys.stream)
                .arg(GROUP)
                .arg(&entry.id)
                .arg(&entry.id)
                .arg(1)
                .query(&mut self.broker.con)?;
            return Ok(pending
                .ids
                .first()
                .map(|p| (entry, p.times_delivered.max(1))));
        }
        // Look without waiting first: with no new entry, a complete job has nothing to
        // wait for (the caller sees it complete), else wait for an entry or a wake-up.
        if let Some(entry) = self.read_new(worker, None)? {
            return Ok(Some((entry, 1)));
        }
        let idle = &worker.idle[self.index];
        idle.waiting.store(true, Ordering::SeqCst);
        let complete = if worker.follow {
            Ok(false)
        } else {
            self.broker
                .rows_done(&worker.keys)
                .map(|done| done >= worker.total)
        };
        let read = match complete {
            Ok(true) => Ok(None),
            Ok(false) => self.read_new(worker, Some(worker.read_block_ms)),
            Err(err) => Err(err),
        };
        idle.waiting.store(false, Ordering::SeqCst);
        Ok(read?.map(|entry| (entry, 1)))
    }

    /// A new entry for this consumer, waiting up to `block_ms` for one when given.
    fn read_new(
        &mut self,
        worker: &Worker,
        block_ms: Option<u64>,
    ) -> anyhow::Result<Option<StreamId>> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(1);
        if let Some(ms) = block_ms {
            cmd.arg("BLOCK").arg(ms);
        }
        let read: Option<StreamReadReply> = cmd
            .arg("STREAMS")
            .arg(&worker.keys.stream)
            .arg(">")
            .query(&mut self.broker.con)?;
        Ok(read
            .and_then(|r| r.keys.into_iter().next())
            .and_then(|k| k.ids.into_iter().next()))
    }

    /// Analyses one entry, or gives it up when it has killed too many workers.
    fn analyze_entry(
        &mut self,
        worker: &Worker,
        entry: &StreamId,
        deliveries: usize,
    ) -> anyhow::Result<Finished> {
        let index: usize = entry
            .get("index")
            .with_context(|| format!("stream entry {} has no index", entry.id))?;
        let path: Vec<u8> = entry
            .get("path")
            .with_context(|| format!("stream entry {} has no path", entry.id))?;
        let path = PathBuf::from(OsString::from_vec(path));
        worker.event(json!({
            "event": "claimed", "index": index, "deliveries": deliveries,
            "consumer": self.consumer,
        }));
        let record = if deliveries > MAX_DELIVERIES {
            let reason = format!(
                "dist: worker_died: delivered {MAX_DELIVERIES} times and its worker died each time"
            );
            AnalyzeRecord::new(&path, Status::Error, None, Some(&reason))
        } else {
            self.analyze_with_heartbeat(worker, &entry.id, index, &path)
        };
        Ok(Finished {
            id: entry.id.clone(),
            index,
            record,
        })
    }

    /// Stores a row and acknowledges its entry ([`STORE_SCRIPT`]); fails, storing nothing,
    /// when the manifest no longer names the worker's run.
    fn store(&mut self, worker: &Worker, finished: &Finished) -> anyhow::Result<()> {
        let line = CsvLine.serialize(&finished.record)?;
        let keys = &worker.keys;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let stored: bool = redis::cmd("EVAL")
            .arg(STORE_SCRIPT)
            .arg(5)
            .arg(&keys.manifest)
            .arg(&keys.rows)
            .arg(&keys.states)
            .arg(&keys.stream)
            .arg(&keys.finished_at)
            .arg(&keys.run)
            .arg(finished.index)
            .arg(line)
            .arg(&finished.record.status)
            .arg(GROUP)
            .arg(&finished.id)
            .arg(now_ms)
            .arg(now_ms.saturating_sub(RATE_WINDOW_MS))
            .query(&mut self.broker.con)?;
        if !stored {
            self.broker.ensure_run(keys)?;
            bail!(
                "the broker refused row {} of run {}",
                finished.index,
                keys.run
            );
        }
        worker.event(json!({
            "event": "stored", "index": finished.index, "status": finished.record.status,
            "consumer": self.consumer,
        }));
        Ok(())
    }

    /// The row of `path`, analysed by the batch runner as `analyze` does (read where
    /// `--path-map` says, kept under the submitted path), while another thread keeps the
    /// claim on entry `id` fresh.
    fn analyze_with_heartbeat(
        &mut self,
        worker: &Worker,
        id: &str,
        index: usize,
        path: &Path,
    ) -> AnalyzeRecord {
        let done = AtomicBool::new(false);
        let interval = (worker.reclaim_after / 3).max(Duration::from_millis(50));
        let beat = &mut self.beat;
        let consumer = &self.consumer;
        thread::scope(|s| {
            let heart = s.spawn(|| {
                while !done.load(Ordering::SeqCst) {
                    thread::park_timeout(interval);
                    if done.load(Ordering::SeqCst) {
                        break;
                    }
                    // JUSTID: the claim's idle time is reset without counting a delivery.
                    let refreshed: redis::RedisResult<redis::Value> = redis::cmd("XCLAIM")
                        .arg(&worker.keys.stream)
                        .arg(GROUP)
                        .arg(consumer)
                        .arg(0)
                        .arg(id)
                        .arg("JUSTID")
                        .query(&mut beat.con);
                    match refreshed {
                        Ok(_) => worker.event(json!({
                            "event": "heartbeat", "index": index, "consumer": consumer,
                        })),
                        Err(err) => {
                            eprintln!("eval-cli: warning: heartbeat for {id} failed: {err}");
                            // After a broker restart the old connection is dead: try a new
                            // one at the next beat.
                            if let Ok(fresh) = beat.reconnect() {
                                *beat = fresh;
                            }
                        }
                    }
                }
            });
            let local = worker.local_path(path);
            let job = |file: &Path, stop: &StopSignal| {
                if worker.test_gates && !crate::gate::hold(file, stop) {
                    stop.check(Stage::Open)?;
                }
                worker.analyzer.analyze_file(file, stop)
            };
            let result = Batch::new(&job).run_file(0, &local);
            done.store(true, Ordering::SeqCst);
            heart.thread().unpark();
            match result.as_ref() {
                Some(r) => AnalyzeRecord::new(path, r.status, r.value.as_ref(), r.error.as_deref()),
                None => AnalyzeRecord::new(
                    path,
                    Status::Error,
                    None,
                    Some("dist: cancelled: the batch runner returned no result"),
                ),
            }
        })
    }
}

/// The state of a job, as `dist status --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// The job's name.
    pub job: String,
    /// Rows of the complete job.
    pub total: usize,
    /// Rows stored.
    pub done: usize,
    /// Rows stored whose status is not `ok`.
    pub failed: usize,
    /// Entries delivered to a consumer and not yet acknowledged.
    pub in_flight: usize,
    /// Rows neither stored nor in flight.
    pub waiting: usize,
    /// Whether every row is stored.
    pub complete: bool,
    /// Rows stored per second over the last minute (by the workers' clocks); `None` until
    /// two rows were stored in that minute.
    pub rate_per_s: Option<f64>,
    /// Seconds until the job is complete at that rate.
    pub eta_s: Option<f64>,
    /// Consumers holding entries, by name.
    pub consumers: Vec<ConsumerStatus>,
}

/// One consumer and the entries it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerStatus {
    /// `HOST:PID:SLOT`.
    pub name: String,
    /// The entries it holds.
    pub files: Vec<HeldFile>,
}

/// An entry a consumer holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldFile {
    /// Its input index.
    pub index: usize,
    /// Milliseconds since it was delivered or its claim refreshed.
    pub idle_ms: usize,
    /// Times delivered.
    pub deliveries: usize,
}

fn job_status(broker: &mut Broker) -> anyhow::Result<JobStatus> {
    let (manifest, keys) = broker.current_run()?;
    let done = broker.rows_done(&keys)?;
    let failed = broker.rows_failed(&keys)?;
    let summary: StreamPendingReply = redis::cmd("XPENDING")
        .arg(&keys.stream)
        .arg(GROUP)
        .query(&mut broker.con)?;
    let held: StreamPendingCountReply = redis::cmd("XPENDING")
        .arg(&keys.stream)
        .arg(GROUP)
        .arg("-")
        .arg("+")
        .arg(CHUNK)
        .query(&mut broker.con)?;
    let mut consumers: Vec<ConsumerStatus> = Vec::new();
    for p in held.ids {
        let file = HeldFile {
            index: entry_seq(&p.id)? - 1,
            idle_ms: p.last_delivered_ms,
            deliveries: p.times_delivered,
        };
        match consumers.iter_mut().find(|c| c.name == p.consumer) {
            Some(c) => c.files.push(file),
            None => consumers.push(ConsumerStatus {
                name: p.consumer,
                files: vec![file],
            }),
        }
    }
    consumers.sort_by(|a, b| a.name.cmp(&b.name));
    let in_flight = summary.count();
    let total = manifest.total();
    let rate_per_s = recent_rate(broker, &keys)?;
    let eta_s = rate_per_s.map(|rate| total.saturating_sub(done) as f64 / rate);
    Ok(JobStatus {
        job: broker.job.clone(),
        total,
        done,
        failed,
        in_flight,
        waiting: total.saturating_sub(done + in_flight),
        complete: done >= total,
        rate_per_s,
        eta_s,
        consumers,
    })
}

/// Rows per second between the first and the last row stored in the last minute.
fn recent_rate(broker: &mut Broker, keys: &Keys) -> anyhow::Result<Option<f64>> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let times: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(&keys.finished_at)
        .arg(now_ms.saturating_sub(RATE_WINDOW_MS))
        .arg("+inf")
        .arg("BYSCORE")
        .arg("WITHSCORES")
        .query(&mut broker.con)?;
    Ok(rate_of(times.iter().map(|(_, ms)| *ms)))
}

/// Rows per second of store times (ms, ascending): intervals between the first and the last.
fn rate_of(times_ms: impl Iterator<Item = f64>) -> Option<f64> {
    let (mut first, mut last, mut count) = (None, 0.0, 0usize);
    for t in times_ms {
        first.get_or_insert(t);
        last = t;
        count += 1;
    }
    let span_s = (last - first?) / 1000.0;
    (count >= 2 && span_s > 0.0).then(|| (count - 1) as f64 / span_s)
}

fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let retry = args.retry.of(&args.job);
    let mut broker = Broker::connect_retrying(&args.job, &retry)?;
    let status = broker.with_reconnects(&retry, job_status)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &status)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "job {}: {} of {} done ({} failed), {} in flight, {} waiting{}{}",
            status.job,
            status.done,
            status.total,
            status.failed,
            status.in_flight,
            status.waiting,
            match (status.rate_per_s, status.eta_s) {
                (Some(rate), Some(eta)) if !status.complete =>
                    format!("; {rate:.1} files/s, ETA {}", eta_text(eta)),
                _ => String::new(),
            },
            if status.complete { "; complete" } else { "" }
        )?;
        for c in &status.consumers {
            let files: Vec<String> = c
                .files
                .iter()
                .map(|f| {
                    format!(
                        "#{} ({} ms idle, delivered {}x)",
                        f.index, f.idle_ms, f.deliveries
                    )
                })
                .collect();
            writeln!(out, "  {}: {}", c.name, files.join(", "))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `1h02m`, `3m05s`, `42s`.
fn eta_text(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, min, sec) => format!("{min}m{sec:02}s"),
        (h, min, _) => format!("{h}h{min:02}m"),
    }
}

fn merge(args: MergeArgs) -> anyhow::Result<ExitCode> {
    // A destination that may not be written is refused before any wait, not at its end.
    crate::output::Destination::check(&args.out, &crate::output::Inputs::none())?;
    let retry = args.retry.of(&args.job);
    let mut broker = Broker::connect_retrying(&args.job, &retry)?;
    // The run in force now: rows of any other run are never read.
    let (manifest, keys) = broker.with_reconnects(&retry, Broker::current_run)?;
    let total = manifest.total();
    let mut last_shown = usize::MAX;
    loop {
        let done = broker.with_reconnects(&retry, |b| {
            b.ensure_run(&keys)?;
            b.rows_done(&keys)
        })?;
        if done >= total {
            break;
        }
        if args.no_wait {
            bail!(
                "job {:?} is not complete: {done} of {total} rows",
                broker.job
            );
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
    crate::output::write_file(&args.out, &bytes)?;
    eprintln!(
        "eval-cli: job {:?}: {total} rows written to {} ({failed} failed)",
        broker.job,
        args.out.display()
    );
    Ok(ExitCode::from(u8::from(failed > 0)))
}

/// The header and the rows of a complete run, in input order.
fn merged_rows(broker: &mut Broker, keys: &Keys, total: usize) -> anyhow::Result<Vec<u8>> {
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
                None => bail!(
                    "job {:?} has no row {i} although it is complete",
                    broker.job
                ),
            }
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_counts_intervals_between_the_first_and_the_last_row() {
        assert_eq!(rate_of([].into_iter()), None);
        assert_eq!(rate_of([5000.0].into_iter()), None);
        assert_eq!(rate_of([1000.0, 1000.0].into_iter()), None);
        // 5 rows over 2 s: 4 intervals.
        let rate = rate_of([1000.0, 1500.0, 2000.0, 2500.0, 3000.0].into_iter()).unwrap();
        assert!((rate - 2.0).abs() < 1e-12, "{rate}");
    }

    #[test]
    fn eta_reads_like_a_clock() {
        assert_eq!(eta_text(42.4), "42s");
        assert_eq!(eta_text(185.0), "3m05s");
        assert_eq!(eta_text(3720.0), "1h02m");
    }

    #[test]
    fn path_maps_rewrite_the_prefix_only() {
        let map = parse_path_map("/srv/music=/mnt/music").unwrap();
        assert!(parse_path_map("/srv/music").is_err());
        assert!(parse_path_map("=/mnt").is_err());
        let worker = Worker {
            analyzer: Analyzer::new(analyzer_core::AnalyzerConfig::default()).unwrap(),
            keys: Keys::new("j", "0"),
            total: 0,
            reclaim_after: Duration::from_secs(1),
            broker_retry: Duration::from_secs(1),
            path_maps: vec![map],
            follow: false,
            events: false,
            read_block_ms: READ_BLOCK_MS,
            test_gates: false,
            cancel: Arc::new(AtomicBool::new(false)),
            idle: Vec::new(),
        };
        assert_eq!(
            worker.local_path(Path::new("/srv/music/a/b.mp3")),
            PathBuf::from("/mnt/music/a/b.mp3")
        );
        // A component-wise prefix: /srv/musical is not under /srv/music.
        assert_eq!(
            worker.local_path(Path::new("/srv/musical/b.mp3")),
            PathBuf::from("/srv/musical/b.mp3")
        );
    }

    #[test]
    fn entry_ids_carry_the_index() {
        assert_eq!(entry_seq("0-1").unwrap(), 1);
        assert_eq!(entry_seq("0-1000").unwrap(), 1000);
        assert!(entry_seq("1700000000000-0").is_err());
    }
}
