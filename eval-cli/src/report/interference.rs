//! Whether a measured speedup can be trusted. Around every child run `compare` reads what
//! the machine did ([`crate::host::LoadWindow`]); here those readings become a verdict: a
//! worker count whose runs shared the cores with another process, or whose repeats
//! disagree, gets a plain note next to its speedup, and `check` can refuse the report
//! (`max_interference`, `max_repeat_spread`).

use crate::host::RunLoad;
use crate::report::model::WorkerRun;

/// Cores another process must have used on average during a worker count's runs before
/// its speedup is called disturbed: a quarter core is far above the few hundredths that
/// an idle machine's daemons take, and enough to move a 2-worker speedup by 10 %.
pub const SIGNIFICANT_CORES: f64 = 0.25;

/// Steal time, in cores, worth a note: the hypervisor ran another machine on these cores.
pub const SIGNIFICANT_STEAL: f64 = 0.05;

/// Spread of one worker count's repeats, (max - min) / median, beyond which the median
/// hides a disagreement: repeats on a quiet machine agree within a few per cent.
pub const MAX_QUIET_SPREAD: f64 = 0.10;

/// A worker count's runs together: cores other processes used on average, and steal.
pub fn average_cores(loads: &[RunLoad]) -> (Option<f64>, Option<f64>) {
    let window: f64 = loads.iter().map(|l| l.window_s).sum();
    let mean = |part: fn(&RunLoad) -> Option<f64>| -> Option<f64> {
        let total: Option<f64> = loads.iter().map(part).sum();
        total.filter(|_| window > 0.0).map(|t| t / window)
    };
    (mean(|l| l.other_s), mean(|l| l.steal_s))
}

/// (max - min) / median of the repeats' wall times; 0 for one repeat.
pub fn spread(wall_s: &[f64], median: f64) -> f64 {
    let max = wall_s.iter().copied().fold(f64::MIN, f64::max);
    let min = wall_s.iter().copied().fold(f64::MAX, f64::min);
    if wall_s.len() < 2 || median <= 0.0 {
        0.0
    } else {
        (max - min) / median
    }
}

/// Whether another process took a significant share of the cores during `run`.
pub fn disturbed(run: &WorkerRun) -> bool {
    run.other_cores.is_some_and(|c| c >= SIGNIFICANT_CORES)
}

/// Whether the other work during `run` needed more than the cores the run left idle: then
/// the two competed for cores, and the run was slowed for certain. Work on idle cores
/// slows a run only through what the cores share (caches, memory bandwidth, clock boost).
pub fn competed(run: &WorkerRun, cores: usize) -> bool {
    let idle = cores.saturating_sub(run.workers.min(cores)) as f64;
    run.other_cores
        .is_some_and(|c| c >= SIGNIFICANT_CORES && c > idle + SIGNIFICANT_CORES)
}

/// What a disturbance does to the speedup at `run`, given the 1-worker `baseline`: a
/// slowed parallel run makes its speedup a lower bound, a slowed baseline overstates it;
/// "maybe" where the other work ran on cores the runs left idle.
pub fn caveat(run: &WorkerRun, baseline: &WorkerRun, cores: usize) -> Option<&'static str> {
    let parallel = run.workers > 1 && disturbed(run);
    match (disturbed(baseline), parallel) {
        (false, false) => None,
        (false, true) if competed(run, cores) => Some("a lower bound"),
        (false, true) => Some("maybe a lower bound"),
        (true, false) if competed(baseline, cores) => Some("overstated"),
        (true, false) => Some("maybe overstated"),
        (true, true) => Some("unreliable"),
    }
}

/// The notes on interference and spread, one per worker count that needs one.
pub fn notes(cores: usize, runs: &[WorkerRun]) -> Vec<String> {
    let Some(baseline) = runs.iter().find(|r| r.workers == 1) else {
        return Vec::new();
    };
    let mut notes = Vec::new();
    for run in runs {
        let w = run.workers;
        let during = format!("during the {w}-worker run{}", plural(run.wall_s.len()));
        if let Some(other) = run.other_cores.filter(|_| disturbed(run)) {
            let (how, slowed) = if competed(run, cores) {
                ("competing with them for the cores", "was slowed")
            } else {
                (
                    "on cores they left idle (what the cores share can still slow them)",
                    "may have been slowed",
                )
            };
            let effect = if w == 1 {
                format!("the baseline {slowed}, so the speedups may be overstated")
            } else {
                format!(
                    "the speedup at {w} workers is {}",
                    caveat(run, baseline, cores).unwrap_or("a lower bound")
                )
            };
            notes.push(format!(
                "Another process used {other:.1} of the {cores} core{} {during}, {how}: \
                 {effect}.",
                plural(cores)
            ));
        }
        if let Some(steal) = run.steal_cores.filter(|&s| s >= SIGNIFICANT_STEAL) {
            notes.push(format!(
                "The hypervisor withheld {steal:.2} cores (steal time) {during}: its timings \
                 are slower than the machine's."
            ));
        }
        if run.spread > MAX_QUIET_SPREAD {
            notes.push(format!(
                "The repeats at {w} worker{} differ by {:.0} % (slowest against fastest, over \
                 the median): more than repeats on a quiet machine do; the median hides it.",
                plural(w),
                run.spread * 100.0
            ));
        }
    }
    notes
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(workers: usize, other: Option<f64>, spread: f64) -> WorkerRun {
        WorkerRun {
            other_cores: other,
            steal_cores: Some(0.0),
            spread,
            ..WorkerRun::at(workers, workers as f64)
        }
    }

    #[test]
    fn a_busy_parallel_run_makes_its_speedup_a_lower_bound() {
        let runs = [run(1, Some(0.02), 0.01), run(2, Some(0.8), 0.02)];
        let notes = notes(2, &runs);
        assert_eq!(
            notes,
            [
                "Another process used 0.8 of the 2 cores during the 2-worker runs, competing \
                 with them for the cores: the speedup at 2 workers is a lower bound."
            ]
        );
        assert_eq!(caveat(&runs[1], &runs[0], 2), Some("a lower bound"));
    }

    #[test]
    fn a_busy_baseline_overstates_and_both_busy_is_unreliable() {
        let runs = [run(1, Some(1.5), 0.0), run(2, Some(0.1), 0.0)];
        assert_eq!(caveat(&runs[1], &runs[0], 2), Some("overstated"));
        assert!(notes(2, &runs)[0].contains("the baseline was slowed, so the speedups may"));
        let both = [run(1, Some(1.5), 0.0), run(2, Some(0.5), 0.0)];
        assert_eq!(caveat(&both[1], &both[0], 2), Some("unreliable"));
        assert!(notes(2, &both)[1].contains("at 2 workers is unreliable"));
    }

    #[test]
    fn work_on_the_cores_a_run_left_idle_only_may_have_slowed_it() {
        // One worker on two cores leaves one idle: a process using it does not compete.
        let runs = [run(1, Some(1.0), 0.0), run(2, Some(0.05), 0.0)];
        assert!(!competed(&runs[0], 2) && competed(&runs[0], 1));
        assert_eq!(caveat(&runs[1], &runs[0], 2), Some("maybe overstated"));
        let note = &notes(2, &runs)[0];
        assert!(
            note.contains("on cores they left idle") && note.contains("may have been slowed"),
            "{note}"
        );
        // Four workers on eight cores leave four idle.
        let wide = [run(1, Some(0.0), 0.0), run(4, Some(2.0), 0.0)];
        assert_eq!(caveat(&wide[1], &wide[0], 8), Some("maybe a lower bound"));
    }

    #[test]
    fn a_quiet_run_gets_no_note_and_an_unmeasured_one_no_verdict() {
        assert!(notes(2, &[run(1, Some(0.24), 0.09), run(2, Some(0.0), 0.0)]).is_empty());
        assert!(notes(2, &[run(1, None, 0.0), run(2, None, 0.0)]).is_empty());
    }

    #[test]
    fn repeats_that_disagree_and_steal_are_said() {
        let mut stolen = run(2, Some(0.0), 0.25);
        stolen.steal_cores = Some(0.3);
        let notes = notes(2, &[run(1, Some(0.0), 0.0), stolen]);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("withheld 0.30 cores"), "{notes:?}");
        assert!(notes[1].contains("differ by 25 %"), "{notes:?}");
    }

    #[test]
    fn loads_average_over_the_whole_window_and_spread_is_relative() {
        let load = |window_s, other_s| RunLoad {
            window_s,
            other_s: Some(other_s),
            steal_s: Some(0.0),
            ..RunLoad::default()
        };
        let (other, steal) = average_cores(&[load(2.0, 1.0), load(2.0, 0.2)]);
        assert!((other.unwrap() - 0.3).abs() < 1e-9);
        assert_eq!(steal, Some(0.0));
        let unknown = RunLoad {
            window_s: 1.0,
            ..RunLoad::default()
        };
        assert_eq!(average_cores(&[load(1.0, 1.0), unknown]), (None, None));
        assert!((spread(&[1.0, 1.2, 1.1], 1.1) - 0.2 / 1.1).abs() < 1e-9);
        assert_eq!(spread(&[3.0], 3.0), 0.0);
    }
}
