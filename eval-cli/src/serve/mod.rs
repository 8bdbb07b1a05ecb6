//! `eval-cli serve`: the analyzer as an HTTP service. Jobs of files under the `--root`s,
//! live progress as server-sent events, single-file uploads, Prometheus metrics and a small
//! web page, all from one process with one shared worker pool.
//!
//! ```text
//! HTTP (tokio, api.rs) ─POST /v1/jobs─▶ Job (jobs.rs) ─files─▶ Scheduler (uploads, high, normal;
//!   ▲                  ─POST /v1/analyze─▶ Upload ──────────▶  round-robin per job)
//!   │                                                                │ one file at a time
//!   └── events.rs (SSE) ◀── Job events ◀── Pool: --workers std threads (pool.rs) ─▶ FileAnalysis
//! ```
//!
//! The flags are read in two steps like every command: [`ServeArgs`] mirrors the command
//! line, [`Plan`] is what the service runs with (canonical roots, workers, limits, token).
//! Each file goes through a [`FileAnalysis`], by default [`BatchAnalysis`]: the batch
//! runner exactly as `analyze` uses it, so a job's CSV has the bytes of `analyze`.
//! [`run_with`] takes another one (a result cache wrapping [`BatchAnalysis`], say).
//!
//! The doors: [`connections`] accepts at most `--max-connections` connections and closes
//! those that send no headers within `--header-timeout`; [`guard`] refuses requests whose
//! `Host` or `Origin` is not this service's own (DNS rebinding, cross-site requests).

mod api;
mod connections;
mod events;
mod guard;
mod http;
mod job_routes;
mod jobs;
mod pace;
mod page;
mod paths;
mod pool;
pub mod scheduler;
mod settings;
mod table;
mod telemetry;
mod upload;
mod ws;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use analyzer_core::{Analyzer, AnalyzerConfig};
use anyhow::{Context, bail};
use tokio::sync::watch;

pub use crate::analysis::{BatchAnalysis, CachedAnalysis, Candidate, FileAnalysis, FileOutcome};

use crate::cache::CacheArgs;
use crate::flags;
use crate::stdout;
use crate::threads::{self, ThreadRefused};
use connections::{ConnectionLimits, ConnectionSlots};
use guard::Guard;
use jobs::Job;
use pool::Pool;
use table::{JobTable, Keep};
use telemetry::Telemetry;

/// Worker threads of the async side: it only parses, routes and waits.
const RUNTIME_WORKERS: usize = 2;

/// How long shutdown waits for the running files to stop at their next check.
const SHUTDOWN_PATIENCE: Duration = Duration::from_secs(5);

/// Flags of `eval-cli serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port. The address taken is the first line
    /// on stdout: `listening on http://ADDR`.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8700")]
    listen: SocketAddr,
    /// Folders whose files jobs may name (repeat for several). Paths outside them, through
    /// `..` or symbolic links, are refused.
    #[arg(long, value_name = "DIR", required = true)]
    root: Vec<PathBuf>,
    /// Threads analysing files, shared by every job and upload [default: one per core,
    /// fewer if memory is short].
    #[arg(long, value_name = "N", value_parser = flags::parse_workers)]
    workers: Option<usize>,
    /// Jobs queued or running at once; more are refused with 429.
    #[arg(long, value_name = "N", default_value_t = 16)]
    max_jobs: usize,
    /// Files waiting for a worker, all jobs together; a job that would exceed it is
    /// refused with 429, one larger than it by itself with 413.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    max_queued_files: usize,
    /// Largest upload to `POST /v1/analyze`, MiB; larger ones get 413.
    #[arg(long, value_name = "MB", default_value_t = 200)]
    max_upload_mb: u64,
    /// Give up on a file after SECS seconds; its row says `timeout`.
    #[arg(long, value_name = "SECS", value_parser = flags::parse_timeout)]
    timeout: Option<Duration>,
    /// File holding a token; every request except the page at `/` then needs
    /// `Authorization: Bearer TOKEN`, and any `Host` is served (the service may then be
    /// reached by name); `Origin` is still checked.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    #[command(flatten)]
    cache: CacheArgs,
    /// Connections served at once; more wait in the listen queue until one closes, so
    /// idle clients cannot use up the process's file descriptors (lowered to what
    /// `ulimit -n` holds beside the workers, 2 descriptors each, where that is less).
    #[arg(long, value_name = "N", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Seconds a client has to send a request's headers; a connection that sends nothing
    /// for that long (idle keep-alive included) is closed.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = flags::parse_timeout)]
    header_timeout: Duration,
    /// Seconds a request body may pause between two chunks, and the most it may fall
    /// behind a pace of 1 KiB a second; a slower one is refused with 408.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = flags::parse_timeout)]
    body_timeout: Duration,
    /// Finished jobs kept: once N jobs have finished after it, a job answers 404 saying
    /// it expired.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    keep_jobs: u32,
    /// Rows of finished jobs kept, all of them together: the oldest finished jobs expire
    /// (404 saying so) while the newer ones hold more. The last job to finish is kept
    /// whatever its size. A kept row costs about the bytes of its CSV line.
    #[arg(long, value_name = "N", default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    keep_rows: u64,
    /// An origin (`https://tool.example`, scheme, host and port as a browser sends them)
    /// whose pages may call the service; repeat for several. Other cross-origin requests
    /// are refused with 403.
    #[arg(long, value_name = "ORIGIN", value_parser = guard::parse_origin)]
    allow_origin: Vec<String>,
    /// Internal, for tests: a job's file whose name starts with `gate` holds its worker
    /// until a file of the same name plus `.open` appears beside it, or until the job is
    /// cancelled (gate.rs).
    #[arg(long, hide = true)]
    test_gates: bool,
    #[command(flatten)]
    sampling: flags::SamplingArgs,
}

/// What the service runs with, built from the flags.
pub struct Plan {
    /// The analyzer of requests that name no tempo range (the flags' sampling; requests
    /// with a range get one like it, see `api::analyzer_for`).
    analyzer: Analyzer,
    listen: SocketAddr,
    roots: Vec<PathBuf>,
    workers: usize,
    limits: Limits,
    timeout: Option<Duration>,
    token: Option<String>,
    connections: ConnectionLimits,
    keep: Keep,
    allowed_origins: Vec<String>,
    test_gates: bool,
}

/// The limits a request is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Jobs queued or running.
    pub max_jobs: usize,
    /// Files waiting in the scheduler.
    pub max_queued_files: usize,
    /// Upload bytes.
    pub max_upload_bytes: usize,
}

/// The token of `--token-file`: its text without the surrounding whitespace (the newline
/// an editor or `echo` leaves), refused when empty or when no header could carry it.
fn read_token(path: &Path) -> anyhow::Result<String> {
    // Only a regular file of at most 64 KiB: a pipe waited for a writer forever (Ctrl-C
    // ignored) and `/dev/zero` was read until memory ran out.
    let text = crate::input::read_regular_text(path, 64 << 10, "--token-file ")?;
    let token = text.trim().to_string();
    if token.is_empty() {
        bail!("--token-file {} is empty", path.display());
    }
    // A header value is visible ASCII: a token with a line break, a control or a
    // non-ASCII character was taken, and then no request could match it (always 401).
    if let Some(c) = token.chars().find(|c| !matches!(c, ' '..='~')) {
        bail!(
            "--token-file {}: the token holds {c:?}, which an `Authorization` header cannot \
             carry (write one line of printable ASCII)",
            path.display()
        );
    }
    Ok(token)
}

impl Plan {
    fn new(args: ServeArgs) -> anyhow::Result<Self> {
        let roots = crate::confine::canonical_roots(&args.root)?;
        let token = args.token_file.as_deref().map(read_token).transpose()?;
        if args.max_jobs == 0 || args.max_queued_files == 0 || args.max_upload_mb == 0 {
            bail!("--max-jobs, --max-queued-files and --max-upload-mb must be at least 1");
        }
        let max_upload_bytes = args
            .max_upload_mb
            .checked_mul(1024 * 1024)
            .and_then(|b| usize::try_from(b).ok())
            .context("--max-upload-mb is too large")?;
        let default = AnalyzerConfig::default();
        let analyzer = flags::analyzer(default.min_bpm, default.max_bpm, &args.sampling)?;
        // Workers first, with room kept for one connection; connections get the rest.
        let workers = flags::resolve_workers_beside(
            args.workers,
            crate::open_files::DESCRIPTORS_PER_CONNECTION,
        );
        Ok(Plan {
            analyzer,
            listen: args.listen,
            roots,
            workers,
            limits: Limits {
                max_jobs: args.max_jobs,
                max_queued_files: args.max_queued_files,
                max_upload_bytes,
            },
            timeout: args.timeout,
            token,
            connections: ConnectionLimits {
                max_connections: connections::fit_to_open_files(
                    args.max_connections as usize,
                    workers,
                ),
                header_timeout: args.header_timeout,
                body_timeout: args.body_timeout,
            },
            keep: Keep {
                jobs: args.keep_jobs as usize,
                rows: usize::try_from(args.keep_rows).unwrap_or(usize::MAX),
            },
            allowed_origins: args.allow_origin,
            test_gates: args.test_gates,
        })
    }
}

/// What every request handler shares.
pub struct App {
    roots: Vec<PathBuf>,
    limits: Limits,
    token: Option<String>,
    /// Which `Host` and `Origin` headers are this service's own.
    guard: Guard,
    /// The `--max-connections` slots.
    connections: ConnectionSlots,
    pool: Pool,
    jobs: Mutex<JobTable>,
    telemetry: Arc<Telemetry>,
    /// The analyzer of the default settings, shared by uploads and jobs that keep them.
    default_analyzer: Arc<Analyzer>,
    /// Becomes true at shutdown: event streams end so that the server can stop.
    shutdown: watch::Sender<bool>,
}

impl App {
    /// The job table, its expired jobs dropped.
    fn jobs(&self) -> MutexGuard<'_, JobTable> {
        let mut table = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        table.expire();
        table
    }

    /// Stops the service's work: queued files dropped, running ones cancelled.
    fn stop_work(&self) {
        let _ = self.shutdown.send(true);
        let jobs: Vec<Arc<Job>> = self.jobs().all();
        for job in &jobs {
            job.cancel.store(true, Ordering::SeqCst);
        }
        self.pool.close();
    }
}

/// Runs `eval-cli serve` until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let cache = args.cache.open()?;
    let analysis: Arc<dyn FileAnalysis> = match cache {
        Some(cache) => {
            for warning in cache.take_warnings() {
                eprintln!("eval-cli: warning: {warning}");
            }
            Arc::new(CachedAnalysis {
                cache: Arc::new(cache),
                rescan: args.cache.rescan(),
            })
        }
        None => Arc::new(BatchAnalysis),
    };
    run_with(args, analysis)
}

/// [`run`], analysing each file with `analysis`.
pub fn run_with(args: ServeArgs, analysis: Arc<dyn FileAnalysis>) -> anyhow::Result<ExitCode> {
    let plan = Plan::new(args)?;
    // Asked before tokio starts its workers: where the system refuses one, tokio panics
    // and then waits forever for the one it started (threads.rs). Counted with them: the
    // pool's workers, and one blocking thread (a job's walk, an upload's writes), which
    // tokio would otherwise wait for as long as the service runs.
    threads::probe(RUNTIME_WORKERS + 1 + plan.workers, true)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(RUNTIME_WORKERS)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // Bound before anything starts, so that the guard knows the address taken.
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(plan.listen))
        .with_context(|| format!("cannot listen on {}", plan.listen))?;
    let addr = listener.local_addr()?;
    // Uploads go to the temporary folder: one that cannot take a file (`TMPDIR` naming a
    // folder that does not exist) made every upload a 503, with nothing said at the start.
    if let Err(e) = tempfile::tempfile_in(crate::host::temp_folder()) {
        eprintln!(
            "eval-cli: warning: uploads cannot be stored in {} ({e}); POST /v1/analyze \
             answers 503 until they can (set TMPDIR to a writable folder)",
            crate::host::temp_folder().display()
        );
    }
    let swept = upload::sweep_stale_uploads();
    if swept > 0 {
        eprintln!(
            "eval-cli: removed {swept} upload{} that a stopped service left in {}",
            if swept == 1 { "" } else { "s" },
            crate::host::temp_folder().display()
        );
    }
    let analysis = if plan.test_gates {
        Arc::new(crate::gate::GatedAnalysis { inner: analysis })
    } else {
        analysis
    };
    let telemetry = Arc::new(Telemetry::default());
    // A refusal here is another process's doing, after the probe.
    let pool = Pool::start(plan.workers, analysis, plan.timeout, Arc::clone(&telemetry))
        .map_err(|error| ThreadRefused::of_spawn(&error, true))?;
    let default_analyzer = Arc::new(plan.analyzer);
    let (shutdown, _) = watch::channel(false);
    let guard = Guard::new(addr, plan.token.is_some(), plan.allowed_origins);
    let app = Arc::new(App {
        roots: plan.roots,
        limits: plan.limits,
        token: plan.token,
        guard,
        connections: ConnectionSlots::new(plan.connections.max_connections),
        pool,
        jobs: Mutex::new(JobTable::new(plan.keep)),
        telemetry,
        default_analyzer,
        shutdown,
    });
    runtime.block_on(serve(Arc::clone(&app), listener, plan.connections))?;
    // A walk of a huge folder may still run on a blocking thread: not waited for.
    runtime.shutdown_timeout(Duration::from_secs(1));
    if !app.pool.join(SHUTDOWN_PATIENCE) {
        eprintln!(
            "eval-cli: warning: a worker is stuck in a file after {} s; exiting anyway",
            SHUTDOWN_PATIENCE.as_secs()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    limits: ConnectionLimits,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    stdout::print("cannot write the address to stdout", |out| {
        writeln!(out, "listening on http://{addr}")
    })?;
    eprintln!(
        "eval-cli: serving {} root(s) with {} workers",
        app.roots.len(),
        app.pool.workers()
    );
    let router = api::router(Arc::clone(&app), limits.body_timeout);
    let stopping = Arc::clone(&app);
    let slots = app.connections.clone();
    connections::serve(listener, router, limits, slots, async move {
        crate::runner::shutdown_signal().await;
        eprintln!("eval-cli: shutting down");
        stopping.stop_work();
    })
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_no_header_can_carry_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\r\n").unwrap();
        assert_eq!(read_token(&path).unwrap(), "s3cret");
        for (text, said) in [
            ("sécret\n", "'é'"),
            ("line1\nline2\n", "'\\n'"),
            ("a\0b", "'\\0'"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = format!("{:#}", read_token(&path).unwrap_err());
            assert!(
                err.contains("token") && err.contains(said),
                "{text:?}: {err}"
            );
            assert!(err.contains("printable ASCII"), "{text:?}: {err}");
        }
        std::fs::write(&path, " \n").unwrap();
        assert!(
            read_token(&path)
                .unwrap_err()
                .to_string()
                .contains("is empty")
        );
    }
}
