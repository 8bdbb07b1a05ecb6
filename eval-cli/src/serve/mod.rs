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

mod analysis;
mod api;
mod events;
mod jobs;
mod page;
mod pool;
pub mod scheduler;
mod telemetry;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use analyzer_core::{Analyzer, AnalyzerConfig};
use anyhow::{Context, bail};
use tokio::sync::watch;

pub use analysis::{Analysed, BatchAnalysis, CachedAnalysis, Candidate, FileAnalysis};

use crate::cache::ResultCache;
use crate::flags;
use jobs::{Job, JobId};
use pool::Pool;
use telemetry::Telemetry;

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
    /// refused with 429.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    max_queued_files: usize,
    /// Largest upload to `POST /v1/analyze`, MiB; larger ones get 413.
    #[arg(long, value_name = "MB", default_value_t = 200)]
    max_upload_mb: u64,
    /// Give up on a file after SECS seconds; its row says `timeout`.
    #[arg(long, value_name = "SECS", value_parser = flags::parse_timeout)]
    timeout: Option<Duration>,
    /// File holding a token; every request except the page at `/` then needs
    /// `Authorization: Bearer TOKEN`.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Result cache: a file already analysed with the same bytes and settings is not
    /// decoded again (the one `analyze --cache` uses; several processes may share it).
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// With --cache: analyse every file again and overwrite its cached row.
    #[arg(long, requires = "cache")]
    force: bool,
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

impl Plan {
    fn new(args: ServeArgs) -> anyhow::Result<Self> {
        let mut roots = Vec::new();
        for root in &args.root {
            let canonical = root
                .canonicalize()
                .with_context(|| format!("--root {}", root.display()))?;
            if !canonical.is_dir() {
                bail!("--root {} is not a folder", root.display());
            }
            roots.push(canonical);
        }
        let token = match &args.token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("--token-file {}", path.display()))?;
                let token = text.trim().to_string();
                if token.is_empty() {
                    bail!("--token-file {} is empty", path.display());
                }
                Some(token)
            }
            None => None,
        };
        if args.max_jobs == 0 || args.max_queued_files == 0 {
            bail!("--max-jobs and --max-queued-files must be at least 1");
        }
        let max_upload_bytes = args
            .max_upload_mb
            .checked_mul(1024 * 1024)
            .and_then(|b| usize::try_from(b).ok())
            .context("--max-upload-mb is too large")?;
        let default = AnalyzerConfig::default();
        let analyzer = flags::analyzer(default.min_bpm, default.max_bpm, &args.sampling)?;
        Ok(Plan {
            analyzer,
            listen: args.listen,
            roots,
            workers: flags::resolve_workers(args.workers),
            limits: Limits {
                max_jobs: args.max_jobs,
                max_queued_files: args.max_queued_files,
                max_upload_bytes,
            },
            timeout: args.timeout,
            token,
        })
    }
}

/// Every job the service has seen, by number.
#[derive(Default)]
struct JobTable {
    next: JobId,
    jobs: BTreeMap<JobId, Arc<Job>>,
}

/// What every request handler shares.
pub struct App {
    roots: Vec<PathBuf>,
    limits: Limits,
    token: Option<String>,
    pool: Pool,
    jobs: Mutex<JobTable>,
    telemetry: Arc<Telemetry>,
    /// The analyzer of the default settings, shared by uploads and jobs that keep them.
    default_analyzer: Arc<Analyzer>,
    /// Becomes true at shutdown: event streams end so that the server can stop.
    shutdown: watch::Sender<bool>,
}

impl App {
    fn jobs(&self) -> MutexGuard<'_, JobTable> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn job(&self, id: JobId) -> Option<Arc<Job>> {
        self.jobs().jobs.get(&id).cloned()
    }

    /// Stops the service's work: queued files dropped, running ones cancelled.
    fn stop_work(&self) {
        let _ = self.shutdown.send(true);
        let jobs: Vec<Arc<Job>> = self.jobs().jobs.values().cloned().collect();
        for job in &jobs {
            job.cancel.store(true, Ordering::SeqCst);
        }
        self.pool.close();
    }
}

/// Runs `eval-cli serve` until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let analysis: Arc<dyn FileAnalysis> = match &args.cache {
        Some(dir) => {
            let cache = ResultCache::open(dir)?;
            for warning in cache.take_warnings() {
                eprintln!("eval-cli: warning: {warning}");
            }
            Arc::new(CachedAnalysis {
                cache: Arc::new(cache),
                force: args.force,
            })
        }
        None => Arc::new(BatchAnalysis),
    };
    run_with(args, analysis)
}

/// [`run`], analysing each file with `analysis`.
pub fn run_with(args: ServeArgs, analysis: Arc<dyn FileAnalysis>) -> anyhow::Result<ExitCode> {
    let plan = Plan::new(args)?;
    let telemetry = Arc::new(Telemetry::default());
    let pool = Pool::start(plan.workers, analysis, plan.timeout, Arc::clone(&telemetry))
        .context("cannot start the worker threads")?;
    let default_analyzer = Arc::new(plan.analyzer);
    let (shutdown, _) = watch::channel(false);
    let app = Arc::new(App {
        roots: plan.roots,
        limits: plan.limits,
        token: plan.token,
        pool,
        jobs: Mutex::new(JobTable::default()),
        telemetry,
        default_analyzer,
        shutdown,
    });
    // The async side only parses, routes and waits; two threads are plenty.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(Arc::clone(&app), plan.listen))?;
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

async fn serve(app: Arc<App>, listen: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{addr}")?;
        out.flush()?;
    }
    eprintln!(
        "eval-cli: serving {} root(s) with {} workers",
        app.roots.len(),
        app.pool.workers()
    );
    let router = api::router(Arc::clone(&app));
    let stopping = Arc::clone(&app);
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            eprintln!("eval-cli: shutting down");
            stopping.stop_work();
        })
        .await
        .context("the server failed")?;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
