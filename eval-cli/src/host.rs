//! What the machine and this process are: cores, memory, CPU model, operating system,
//! peak memory, CPU time of a thread or a child, the open-file limit, the thread count,
//! the folder for temporary files.
//! Every read of `/proc` and every sysinfo query is here, so that reports, the runner, the
//! estimators and the service describe the machine the same way.

use std::time::Instant;

use serde::{Deserialize, Serialize};

/// The machine a run was measured on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Host {
    /// Available parallelism (logical cores this process may use).
    pub cores: usize,
    /// Physical cores, when known.
    pub physical_cores: Option<usize>,
    /// CPU model name.
    pub cpu_model: String,
    /// Total memory, GiB.
    pub memory_gib: f64,
    /// Operating system.
    pub os: String,
}

/// The folder for temporary files: `$TMPDIR`, or `/tmp` where it is unset or empty. std's
/// `temp_dir` takes an empty `TMPDIR` as the working folder: the synthetic set's cache and
/// the service's uploads landed wherever the command was run.
pub fn temp_folder() -> std::path::PathBuf {
    match std::env::var_os("TMPDIR") {
        Some(dir) if !dir.is_empty() => dir.into(),
        _ => "/tmp".into(),
    }
}

/// Available parallelism, at least 1.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Describes this machine (sysinfo; unknown parts are left empty).
pub fn host() -> Host {
    use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};
    let kind = RefreshKind::nothing()
        .with_cpu(CpuRefreshKind::nothing())
        .with_memory(MemoryRefreshKind::nothing().with_ram());
    let (cpu_model, memory_gib) = match System::new_with_specifics(kind) {
        Ok(sys) => (
            sys.cpus()
                .first()
                .map(|c| c.brand().trim().to_string())
                .unwrap_or_default(),
            sys.total_memory() as f64 / (1024.0 * 1024.0 * 1024.0),
        ),
        Err(_) => (String::new(), 0.0),
    };
    Host {
        cores: available_cores(),
        physical_cores: System::physical_core_count().ok(),
        cpu_model,
        memory_gib,
        os: System::long_os_version().unwrap_or_default(),
    }
}

/// Peak resident memory of this process in MiB (`VmHWM`), where the OS tells it.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

fn parse_vm_hwm(status: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Threads of this process now (Linux: `Threads:` of `/proc/self/status`); `None` when
/// unknown.
pub fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_threads(&status)
}

fn parse_threads(status: &str) -> Option<usize> {
    let line = status.lines().find(|l| l.starts_with("Threads:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The soft limit on open files (Linux: `/proc/self/limits`); `None` when unknown.
pub fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Linux reports process times in clock ticks of 1/USER_HZ s; USER_HZ is 100 on every
/// Linux architecture in use (`getconf CLK_TCK`).
const TICKS_PER_SECOND: f64 = 100.0;

/// Times of a process from `/proc/PID/stat`.
pub struct ProcTimes {
    /// Whether it has exited (a zombie, not yet reaped).
    pub exited: bool,
    /// utime + stime + cutime + cstime, seconds.
    pub cpu_s: f64,
}

/// The times of process `pid` (Linux), `None` where `/proc` cannot tell.
pub fn proc_times(pid: u32) -> Option<ProcTimes> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat, true)
}

/// Parses a `/proc/.../stat` line: the state, and utime + stime (+ cutime + cstime when
/// `children`). The command name, in parentheses, may itself hold spaces and parentheses.
fn parse_stat(stat: &str, children: bool) -> Option<ProcTimes> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ... utime(11) stime(12) cutime(13) cstime(14).
    let tick = |i: usize| fields.get(i)?.parse::<f64>().ok();
    let mut ticks = tick(11)? + tick(12)?;
    if children {
        ticks += tick(13)? + tick(14)?;
    }
    Some(ProcTimes {
        exited: fields.first() == Some(&"Z"),
        cpu_s: ticks / TICKS_PER_SECOND,
    })
}

/// CPU seconds of the calling thread so far, on Linux.
pub fn thread_cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    parse_stat(&stat, false).map(|t| t.cpu_s)
}

/// What the cores this process may run on have done since boot, from `/proc/stat`: the
/// difference of two readings is what every process on them did in between.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuCounters {
    /// Seconds spent running anything (user, nice, system, irq, softirq), summed over the
    /// cores.
    pub busy_s: f64,
    /// Seconds the hypervisor ran something else while a core wanted to run (steal).
    pub steal_s: f64,
}

impl CpuCounters {
    /// The counters now, over the cores in this process's affinity mask (Linux); `None`
    /// where `/proc` cannot tell.
    pub fn now() -> Option<CpuCounters> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let allowed = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .and_then(|list| parse_cpu_list(list.trim()))?;
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        parse_proc_stat(&stat, &allowed)
    }
}

/// A kernel CPU list (`0-3,8,10-11`) as CPU numbers; `None` when it does not parse.
fn parse_cpu_list(list: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<usize>().ok()?..=b.parse::<usize>().ok()?),
            None => cpus.push(part.parse().ok()?),
        }
    }
    (!cpus.is_empty()).then_some(cpus)
}

/// Sums the `cpuN` lines of `/proc/stat` for the CPUs in `allowed`. The fields after the
/// name are user nice system idle iowait irq softirq steal (guest time is already in user).
fn parse_proc_stat(stat: &str, allowed: &[usize]) -> Option<CpuCounters> {
    let (mut busy, mut steal, mut seen) = (0.0, 0.0, 0);
    for line in stat.lines() {
        let mut fields = line.split_whitespace();
        let Some(cpu) = fields.next().and_then(|n| n.strip_prefix("cpu")) else {
            continue;
        };
        let Ok(n) = cpu.parse::<usize>() else {
            continue; // the `cpu` line of all cores together
        };
        if !allowed.contains(&n) {
            continue;
        }
        let ticks: Vec<f64> = fields.map_while(|f| f.parse().ok()).collect();
        let tick = |i: usize| ticks.get(i).copied();
        busy += tick(0)? + tick(1)? + tick(2)? + tick(5)? + tick(6)?;
        steal += tick(7).unwrap_or(0.0);
        seen += 1;
    }
    (seen > 0).then(|| CpuCounters {
        busy_s: busy / TICKS_PER_SECOND,
        steal_s: steal / TICKS_PER_SECOND,
    })
}

/// The 1-minute load average (`/proc/loadavg`), where the OS tells it.
pub fn load_average() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// CPU seconds this process has spent so far, with those of the children it has waited
/// for (Linux).
pub fn own_cpu_s() -> Option<f64> {
    proc_times(std::process::id()).map(|t| t.cpu_s)
}

/// What the machine did during one run of a child process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RunLoad {
    /// Seconds from just before the child started to just after it was reaped.
    pub window_s: f64,
    /// CPU seconds other processes took on this process's cores in that window; `None`
    /// where `/proc` cannot tell.
    pub other_s: Option<f64>,
    /// Steal seconds on those cores in that window.
    pub steal_s: Option<f64>,
    /// 1-minute load average before the run.
    pub load_before: Option<f64>,
    /// 1-minute load average after it.
    pub load_after: Option<f64>,
}

/// The readings taken before a run of another process, to tell afterwards what the rest
/// of the machine did meanwhile (`compare` around each child run).
pub struct LoadWindow {
    start: Instant,
    counters: Option<CpuCounters>,
    /// This process's CPU seconds, with its reaped children's.
    own_cpu_s: Option<f64>,
    load: Option<f64>,
}

impl LoadWindow {
    /// Reads the machine now, before a child run starts.
    pub fn open() -> LoadWindow {
        LoadWindow {
            load: load_average(),
            own_cpu_s: own_cpu_s(),
            counters: CpuCounters::now(),
            start: Instant::now(),
        }
    }

    /// Reads it again after the child was reaped: what others did in between.
    pub fn close(self) -> RunLoad {
        let window_s = self.start.elapsed().as_secs_f64();
        let (counters, own_cpu_s) = (CpuCounters::now(), own_cpu_s());
        let delta = self.counters.zip(counters);
        RunLoad {
            window_s,
            other_s: delta
                .zip(self.own_cpu_s.zip(own_cpu_s))
                .map(|((a, b), (own_a, own_b))| others_s(b.busy_s - a.busy_s, own_b - own_a)),
            steal_s: delta.map(|(a, b)| (b.steal_s - a.steal_s).max(0.0)),
            load_before: self.load,
            load_after: load_average(),
        }
    }
}

/// CPU seconds that were not the run's: the cores' busy time less the run's own, never
/// below zero (the two are read a few microseconds apart, in ticks of 10 ms).
fn others_s(busy_s: f64, own_s: f64) -> f64 {
    (busy_s - own_s).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_hwm_is_parsed_in_mib() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t    2048 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(2.0));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
    }

    #[test]
    fn the_thread_count_is_parsed() {
        assert_eq!(
            parse_threads("Name:\tx\nThreads:\t7\nSigQ:\t0/1\n"),
            Some(7)
        );
        assert_eq!(parse_threads("Name:\tx\n"), None);
    }

    #[test]
    fn stat_lines_with_odd_names_parse() {
        let line = "42 (a b) c)) Z 1 42 42 0 -1 4194560 100 0 0 0 150 25 7 3 20 0 1 0";
        let t = parse_stat(line, true).unwrap();
        assert!(t.exited);
        assert!((t.cpu_s - 1.85).abs() < 1e-9);
        assert!((parse_stat(line, false).unwrap().cpu_s - 1.75).abs() < 1e-9);
        assert!(parse_stat("garbage", true).is_none());
    }

    #[test]
    fn cpu_lists_parse_ranges_and_singles() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list("5"), Some(vec![5]));
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("a-b"), None);
    }

    #[test]
    fn others_never_go_below_zero() {
        assert_eq!(others_s(1.0, 1.5), 0.0);
        assert!((others_s(2.0, 0.5) - 1.5).abs() < 1e-12);
    }

    #[test]
    fn proc_stat_sums_only_the_allowed_cores() {
        let stat = "cpu  9000 9000 9000 9000 9000 9000 9000 9000 0 0\n\
                    cpu0 100 10 50 1000 20 5 5 30 0 0\n\
                    cpu1 200 0 100 900 0 0 0 0 0 0\n\
                    cpu2 7000 0 0 0 0 0 0 0 0 0\n\
                    intr 12345\n";
        let c = parse_proc_stat(stat, &[0, 1]).unwrap();
        // cpu0: 100 + 10 + 50 + 5 + 5 = 170 busy ticks; cpu1: 300; iowait and idle are not busy.
        assert!((c.busy_s - 4.7).abs() < 1e-9, "{c:?}");
        assert!((c.steal_s - 0.3).abs() < 1e-9, "{c:?}");
        assert!(parse_proc_stat(stat, &[7]).is_none());
    }
}
