//! Worker children of the broker tests (`dist work`, `consume`), killed when dropped, and
//! their `--events` JSON lines on a channel: a test acts when a worker says what it does,
//! never after a pause.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command as Process, Stdio};
use std::sync::mpsc;
use std::thread;

/// A worker child process, killed when dropped (a failed test leaves no process behind).
pub struct WorkerProcess(pub Child);

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A worker child started with `--events` (`dist work`, `consume`): its JSON events arrive
/// on a channel, other stderr lines are passed through. Killed when dropped.
pub struct EventfulWorker {
    pub process: WorkerProcess,
    events: mpsc::Receiver<serde_json::Value>,
    seen: Vec<serde_json::Value>,
}

impl EventfulWorker {
    /// Starts `command` (which must ask for `--events`).
    pub fn spawn(mut command: Process) -> Self {
        let mut child = command.stderr(Stdio::piped()).spawn().unwrap();
        let events = stderr_channel(&mut child, |line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .filter(serde_json::Value::is_object)
        });
        EventfulWorker {
            process: WorkerProcess(child),
            events,
            seen: Vec::new(),
        }
    }

    /// Blocks until an event matching `wanted` arrives, and returns it; panics when the
    /// worker ends first (its stderr closes).
    pub fn wait_for(
        &mut self,
        what: &str,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        loop {
            match self.events.recv() {
                Ok(event) => {
                    self.seen.push(event.clone());
                    if wanted(&event) {
                        return event;
                    }
                }
                Err(_) => panic!(
                    "the worker ended before {what}; its events: {:?}",
                    self.seen
                ),
            }
        }
    }

    /// The events received so far (those `wait_for` passed over included).
    pub fn seen(&self) -> &[serde_json::Value] {
        &self.seen
    }

    /// Waits for the worker to exit and returns all its events.
    pub fn finish(mut self) -> (std::process::ExitStatus, Vec<serde_json::Value>) {
        let status = self.process.0.wait().unwrap();
        self.seen.extend(self.events.try_iter());
        (status, self.seen)
    }
}

/// The stderr lines of `child` that `pick` keeps, on a channel that closes when the child
/// ends; the other lines are passed through.
pub fn stderr_channel<T: Send + 'static>(
    child: &mut Child,
    pick: fn(&str) -> Option<T>,
) -> mpsc::Receiver<T> {
    let err = child.stderr.take().unwrap();
    let (tx, picked) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            match pick(&line) {
                Some(item) => {
                    let _ = tx.send(item);
                }
                None => eprintln!("{line}"),
            }
        }
    });
    picked
}
