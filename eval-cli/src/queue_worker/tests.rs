//! The loop against an in-memory queue: a third broker in one file, and the proof of the
//! loop's guarantees (store before acknowledge, retry after a reconnect, stop after the
//! item in hand, poison rejected with its reason).

use std::collections::VecDeque;
use std::path::Path;

use analyzer_core::batch::Status;
use analyzer_core::{Analyzer, AnalyzerConfig};

use super::*;
use crate::record::AnalyzeRecord;

/// The row every file gets: no file is read.
struct FixedAnalysis;

impl FileAnalysis for FixedAnalysis {
    fn analyze(&self, task: &FileTask<'_>) -> Option<FileOutcome> {
        Some(FileOutcome {
            record: AnalyzeRecord::new(task.path, Status::Ok, None, None),
            candidates: Vec::new(),
            elapsed_s: 0.0,
            stages: Vec::new(),
            from_cache: false,
        })
    }
}

#[derive(Debug, thiserror::Error)]
enum FakeError {
    #[error("connection reset")]
    Lost,
}

impl BrokerError for FakeError {
    fn is_lost(&self) -> bool {
        matches!(self, FakeError::Lost)
    }
}

/// Items by name: `poison*` is refused, `stop*` asks the worker to stop while it is
/// analysed; `fail_store` names an item whose first store is lost with the connection.
/// `OUTLIVE`: whether claims survive a reconnect; if not, a reconnect hands the items not
/// acknowledged out again, first, as an AMQP broker does.
struct FakeQueue<const OUTLIVE: bool = true> {
    items: VecDeque<&'static str>,
    unacknowledged: Vec<&'static str>,
    fail_store: Option<&'static str>,
    /// Whether every reconnect fails.
    unreachable: bool,
    stop: Arc<AtomicBool>,
    analyzer: Analyzer,
    /// What the broker saw, in order.
    log: Vec<String>,
}

impl<const OUTLIVE: bool> FakeQueue<OUTLIVE> {
    fn new(items: &[&'static str], stop: &Arc<AtomicBool>) -> Self {
        FakeQueue {
            items: items.iter().copied().collect(),
            unacknowledged: Vec::new(),
            fail_store: None,
            unreachable: false,
            stop: Arc::clone(stop),
            analyzer: Analyzer::new(AnalyzerConfig::default()).unwrap(),
            log: Vec::new(),
        }
    }
}

impl<const OUTLIVE: bool> Queue for FakeQueue<OUTLIVE> {
    type Item = &'static str;
    type Error = FakeError;
    const CLAIMS_OUTLIVE_CONNECTIONS: bool = OUTLIVE;

    fn claim(&mut self) -> Result<Claim<&'static str>, FakeError> {
        Ok(match self.items.pop_front() {
            Some(item) => {
                self.log.push(format!("claim {item}"));
                self.unacknowledged.push(item);
                Claim::Item(item)
            }
            None => Claim::Complete,
        })
    }

    fn analyse(
        &mut self,
        item: &mut &'static str,
        analyse: &Analyse<'_>,
    ) -> Result<FileOutcome, Refusal> {
        if item.starts_with("poison") {
            return Err(Refusal::Poison {
                class: "unreadable",
                reason: format!("{item} is unreadable"),
            });
        }
        if item.starts_with("stop") {
            self.stop.store(true, Ordering::SeqCst);
        }
        Ok(analyse.file(&self.analyzer, Path::new(item)).unwrap())
    }

    fn store(&mut self, item: &&'static str, outcome: &FileOutcome) -> Result<Stored, FakeError> {
        if self.fail_store.take_if(|failing| failing == item).is_some() {
            self.log.push(format!("store {item} lost"));
            return Err(FakeError::Lost);
        }
        self.log.push(format!("store {}", outcome.record.path));
        Ok(Stored::Yes)
    }

    fn reject(&mut self, item: &&'static str, reason: &str) -> Result<Stored, FakeError> {
        self.log.push(format!("reject {item}: {reason}"));
        Ok(Stored::Yes)
    }

    fn ack(&mut self, item: &&'static str) -> Result<(), FakeError> {
        self.log.push(format!("ack {item}"));
        self.unacknowledged.retain(|held| held != item);
        Ok(())
    }

    fn release(&mut self, item: &&'static str, reason: &str) -> Result<(), FakeError> {
        self.log.push(format!("release {item}: {reason}"));
        Ok(())
    }

    fn reconnect(&mut self) -> Result<(), FakeError> {
        if self.unreachable {
            return Err(FakeError::Lost);
        }
        self.log.push("reconnect".to_string());
        if !OUTLIVE {
            for item in self.unacknowledged.drain(..).rev() {
                self.items.push_front(item);
            }
        }
        Ok(())
    }

    fn labels(&self) -> Map<String, Value> {
        Map::new()
    }

    fn describe(&self, item: &&'static str) -> Map<String, Value> {
        let mut fields = Map::new();
        fields.insert("item".into(), Value::from(*item));
        fields
    }
}

fn slot_loop(stop: &Arc<AtomicBool>) -> SlotLoop {
    SlotLoop {
        analysis: Arc::new(FixedAnalysis),
        timeout: None,
        broker_retry: Duration::from_secs(60),
        stop: Arc::clone(stop),
        events: Events { enabled: false },
        metrics: Arc::new(QueueMetrics::default()),
    }
}

fn run<const OUTLIVE: bool>(queue: &mut FakeQueue<OUTLIVE>, stop: &Arc<AtomicBool>) -> Vec<String> {
    let shared = slot_loop(stop);
    assert!(run_slot(queue, &shared).is_ok());
    std::mem::take(&mut queue.log)
}

/// The log of an item claimed, stored and acknowledged at one go.
fn handled(item: &str) -> Vec<String> {
    vec![
        format!("claim {item}"),
        format!("store {item}"),
        format!("ack {item}"),
    ]
}

/// The log of item `a` whose first store was lost with the connection.
fn lost_store_of_a() -> Vec<String> {
    ["claim a", "store a lost", "reconnect"]
        .map(String::from)
        .to_vec()
}

#[test]
fn each_row_is_stored_before_its_item_is_acknowledged() {
    let stop = Arc::new(AtomicBool::new(false));
    let mut queue = FakeQueue::<true>::new(&["a", "b"], &stop);
    assert_eq!(
        run(&mut queue, &stop),
        [handled("a"), handled("b")].concat()
    );
}

#[test]
fn a_row_whose_store_was_lost_is_not_acknowledged_and_is_stored_after_the_reconnect() {
    let stop = Arc::new(AtomicBool::new(false));
    let mut queue: FakeQueue = FakeQueue::new(&["a", "b"], &stop);
    queue.fail_store = Some("a");
    let stored_again = vec!["store a".to_string(), "ack a".to_string()];
    assert_eq!(
        run(&mut queue, &stop),
        [lost_store_of_a(), stored_again, handled("b")].concat()
    );
}

#[test]
fn a_stop_during_an_analysis_finishes_stores_and_acknowledges_that_item_only() {
    let stop = Arc::new(AtomicBool::new(false));
    let mut queue = FakeQueue::<true>::new(&["a", "stop-b", "c"], &stop);
    assert_eq!(
        run(&mut queue, &stop),
        [handled("a"), handled("stop-b")].concat()
    );
    assert_eq!(queue.items, ["c"]);
}

#[test]
fn a_poison_item_is_rejected_with_its_reason_never_stored_and_then_acknowledged() {
    let stop = Arc::new(AtomicBool::new(false));
    let mut queue = FakeQueue::<true>::new(&["poison", "a"], &stop);
    let rejected = [
        "claim poison",
        "reject poison: poison is unreadable",
        "ack poison",
    ];
    assert_eq!(
        run(&mut queue, &stop),
        [rejected.map(String::from).to_vec(), handled("a")].concat()
    );
}

#[test]
fn an_item_whose_claim_died_with_the_connection_is_dropped_and_taken_again_as_redelivered() {
    let stop = Arc::new(AtomicBool::new(false));
    let mut queue = FakeQueue::<false>::new(&["a", "b"], &stop);
    queue.fail_store = Some("a");
    assert_eq!(
        run(&mut queue, &stop),
        [lost_store_of_a(), handled("a"), handled("b")].concat()
    );
}

#[test]
fn a_broker_that_stays_away_past_the_budget_ends_the_slot_with_the_last_failure() {
    let stop = Arc::new(AtomicBool::new(false));
    let mut queue = FakeQueue::<true>::new(&["a"], &stop);
    (queue.fail_store, queue.unreachable) = (Some("a"), true);
    let shared = SlotLoop {
        broker_retry: Duration::ZERO,
        ..slot_loop(&stop)
    };
    let ended = run_slot(&mut queue, &shared);
    assert!(
        matches!(ended, Err(Ended::Unreachable { budget, last: FakeError::Lost }) if budget.is_zero()),
        "{ended:?}"
    );
    assert_eq!(queue.log, ["claim a", "store a lost"]);
    assert_eq!(queue.unacknowledged, ["a"]);
}
