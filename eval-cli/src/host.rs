//! What the machine and this process are: cores, memory, CPU model, operating system,
//! peak memory, CPU time of a thread or a child, the open-file limit. Every read of
//! `/proc` and every sysinfo query is here, so that reports, the runner, the estimators
//! and the service describe the machine the same way.

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
    fn stat_lines_with_odd_names_parse() {
        let line = "42 (a b) c)) Z 1 42 42 0 -1 4194560 100 0 0 0 150 25 7 3 20 0 1 0";
        let t = parse_stat(line, true).unwrap();
        assert!(t.exited);
        assert!((t.cpu_s - 1.85).abs() < 1e-9);
        assert!((parse_stat(line, false).unwrap().cpu_s - 1.75).abs() < 1e-9);
        assert!(parse_stat("garbage", true).is_none());
    }
}
