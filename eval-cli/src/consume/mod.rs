//! `eval-cli consume`: a long-running worker that takes analysis requests from a RabbitMQ
//! queue and publishes their rows, for platforms built on AMQP.
//!
//! A request is a JSON message (`{"path": "albums/x.mp3"}`, confined under the `--root`s as
//! `serve` confines a job's paths; optional `min_bpm`, `max_bpm`, `descriptors`) or the
//! audio itself (any other content type; a `filename` header names it in the row). Its
//! result goes where `reply_to` says (the RPC convention, `correlation_id` copied), else to
//! `--result-exchange`. Delivery guarantees:
//!
//! - `--workers` slots, each with its own connection and a `basic.qos` prefetch of one: at
//!   most that many requests in hand, each analysed through the batch runner's per-file
//!   guard ([`crate::analysis::BatchAnalysis`]) on its slot's thread; its result is
//!   published with a publisher confirm, and only once the broker confirmed it is the
//!   request acknowledged (at least once, never lost). The slots run the loop of every
//!   broker worker ([`crate::queue_worker`]).
//! - The request queue is a durable quorum queue with `x-delivery-limit` and the
//!   dead-letter exchange `NAME.dead` (a fanout bound to the queue `NAME.dead`): a request
//!   that kills its workers, or whose result cannot be routed, is dead-lettered by the
//!   broker after its limit. A request the worker refuses (unreadable, outside the roots,
//!   too big, nowhere to reply) is published to `NAME.dead` with the reason in its
//!   `x-tempo-scale-reason` header, then acknowledged: never retried, never dropped.
//! - A lost broker is reconnected to for `--broker-retry`; SIGINT or SIGTERM stops taking
//!   deliveries, finishes the files in hand, publishes, acknowledges, and exits 130.
//!
//! Files: `request.rs` (reading a delivery, no I/O to the broker), `session.rs` (the
//! connection, the topology, and the broker as a [`crate::queue_worker::Queue`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use crate::analysis::{BatchAnalysis, FileAnalysis};
use crate::flags;
use crate::queue_worker::metrics::{self, QueueMetrics};
use crate::queue_worker::{Events, SlotLoop, redacted_url, run_on_threads};

mod request;
mod session;

pub use session::{ConsumeError, REASON_HEADER};

/// Exit status after Ctrl-C or SIGTERM.
const EXIT_CANCELLED: u8 = 130;

/// Flags of `eval-cli consume`.
#[derive(Debug, clap::Args)]
pub struct ConsumeArgs {
    /// The broker, `amqp://USER:PASS@HOST:PORT/VHOST` (`%2f` is the default vhost).
    #[arg(long, value_name = "URL")]
    amqp: String,
    /// The request queue (declared durable, quorum, with its dead-letter queue NAME.dead).
    #[arg(long, value_name = "NAME")]
    queue: String,
    /// Folders whose files requests may name (repeat for several). Paths outside them,
    /// through `..` or symbolic links, are dead-lettered.
    #[arg(long, value_name = "DIR", required = true)]
    root: Vec<PathBuf>,
    /// Requests analysed at once (the prefetch) [default: one per core, fewer if memory is
    /// short].
    #[arg(long, value_name = "N", value_parser = flags::parse_workers)]
    workers: Option<usize>,
    /// The analyzer settings of requests that do not name their own.
    #[command(flatten)]
    analyzer: flags::AnalyzerArgs,
    /// Give up on a file after SECS seconds; its row says `timeout`.
    #[arg(long, value_name = "SECS", value_parser = flags::parse_timeout)]
    timeout: Option<Duration>,
    /// Where results go when a request has no `reply_to` (with --result-routing-key).
    #[arg(long, value_name = "EXCHANGE", requires = "result_routing_key")]
    result_exchange: Option<String>,
    /// The routing key of results sent to --result-exchange.
    #[arg(long, value_name = "KEY", requires = "result_exchange")]
    result_routing_key: Option<String>,
    /// Largest audio message, MiB; larger ones are dead-lettered.
    #[arg(long, value_name = "MB", default_value_t = 100)]
    max_audio_mb: u64,
    /// Deliveries of one request before the broker dead-letters it (`x-delivery-limit`
    /// of the quorum queue).
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..))]
    delivery_limit: u32,
    /// When the broker goes away, keep reconnecting for SECS seconds before giving up.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = flags::parse_timeout)]
    broker_retry: Duration,
    /// One JSON object per line on stderr as requests are claimed, stored, dead-lettered,
    /// and when the broker is lost and found again (for logs and tests).
    #[arg(long)]
    events: bool,
    /// Serve `GET /metrics` (Prometheus text) on ADDR, e.g. `127.0.0.1:9464`; port 0 takes
    /// a free one, said on stderr (and in the `metrics` event).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// Internal, for tests: a file whose name starts with `gate` holds its worker until
    /// `NAME.open` appears beside it (gate.rs).
    #[arg(long, hide = true)]
    test_gates: bool,
}

/// Runs `eval-cli consume` until SIGINT or SIGTERM (exit 130), or until the broker stays
/// away past `--broker-retry` (an error).
pub fn run(args: ConsumeArgs) -> anyhow::Result<ExitCode> {
    // A malformed URL is refused at once, not retried for --broker-retry; the parser's
    // reason may quote the URL, so its password is hidden there too.
    args.amqp.parse::<lapin::uri::AMQPUri>().map_err(|e| {
        let shown = redacted_url(&args.amqp);
        anyhow::anyhow!("--amqp {shown}: {}", e.replace(&args.amqp, &shown))
    })?;
    let roots = crate::confine::canonical_roots(&args.root)?;
    let analyzer = Arc::new(args.analyzer.analyzer()?);
    let slots = flags::resolve_workers(args.workers);
    let max_audio_bytes = args
        .max_audio_mb
        .checked_mul(1024 * 1024)
        .and_then(|b| usize::try_from(b).ok())
        .context("--max-audio-mb is too large")?;
    let mut analysis: Arc<dyn FileAnalysis> = Arc::new(BatchAnalysis);
    if args.test_gates {
        analysis = Arc::new(crate::gate::GatedAnalysis { inner: analysis });
    }
    let result_destination =
        args.result_exchange
            .zip(args.result_routing_key)
            .map(|(exchange, routing_key)| request::Destination {
                exchange,
                routing_key,
            });
    let events = Events {
        enabled: args.events,
    };
    let worker = session::Worker {
        url: args.amqp,
        queue: args.queue,
        delivery_limit: args.delivery_limit,
        roots,
        default_analyzer: analyzer,
        result_destination,
        max_audio_bytes,
        events,
    };
    let stopper = Arc::new(Stopper {
        flag: Arc::new(AtomicBool::new(false)),
        tell: watch::channel(false).0,
    });
    let shared = SlotLoop {
        analysis,
        timeout: args.timeout,
        broker_retry: args.broker_retry,
        stop: Arc::clone(&stopper.flag),
        events,
        metrics: Arc::new(QueueMetrics::default()),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    if let Some(address) = args.metrics {
        metrics::listen(address, &shared.metrics, events, runtime.handle())
            .with_context(|| format!("--metrics {address}: cannot listen"))?;
    }
    let on_signal = Arc::clone(&stopper);
    runtime.spawn(async move {
        crate::runner::shutdown_signal().await;
        on_signal.stop();
    });
    let slots = (0..slots)
        .map(|index| {
            session::AmqpSlot::new(
                &worker,
                runtime.handle().clone(),
                stopper.tell.subscribe(),
                index,
            )
        })
        .collect();
    run_on_threads(slots, |slot| {
        let result = slot.run(&shared);
        if result.is_err() {
            // One broken slot stops the others: the worker is reported failed.
            stopper.stop();
        }
        result
    })?;
    eprintln!("eval-cli: stopped; the requests in hand were finished, published and acknowledged");
    Ok(ExitCode::from(EXIT_CANCELLED))
}

/// SIGINT/SIGTERM (or a failed slot): the loop's flag, and the wake-up of the slots that
/// wait for a delivery.
struct Stopper {
    flag: Arc<AtomicBool>,
    tell: watch::Sender<bool>,
}

impl Stopper {
    fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.tell.send_replace(true);
    }
}
