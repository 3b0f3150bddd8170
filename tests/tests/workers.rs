//! The runtime gets one worker thread per CPU the process may use: all of
//! them when unrestricted, the CPUs of its affinity mask (`taskset`), and
//! the CPUs of its cgroup's CPU quota (v1 `cpu.cfs_quota_us` or v2
//! `cpu.max`, when the test may create a cgroup: it runs as root on CI).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use tern_e2e::Tern;

const CONFIG: &str = r#"
exporters:
  nop:
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [nop]
"#;

/// Threads of `pid` named `tern-worker`.
fn workers(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter(|t| {
            let comm = t.as_ref().unwrap().path().join("comm");
            std::fs::read_to_string(comm).unwrap_or_default().trim() == "tern-worker"
        })
        .count()
}

fn workers_when_started_with(wrapper: &[&str]) -> usize {
    let mut tern = Tern::start_wrapped(wrapper, CONFIG);
    let n = workers(tern.pid());
    assert!(tern.stop().success(), "{}", tern.logs());
    n
}

/// A cgroup limited to one CPU's worth of time, removed on drop.
struct OneCpuCgroup(PathBuf);

impl OneCpuCgroup {
    fn create() -> Option<OneCpuCgroup> {
        let name = format!("tern-workers-test-{}", std::process::id());
        let v1 = Path::new("/sys/fs/cgroup/cpu");
        if v1.join("cpu.cfs_quota_us").exists() {
            let dir = v1.join(name);
            std::fs::create_dir(&dir).ok()?;
            let group = OneCpuCgroup(dir);
            std::fs::write(group.0.join("cpu.cfs_period_us"), "100000").ok()?;
            std::fs::write(group.0.join("cpu.cfs_quota_us"), "100000").ok()?;
            return Some(group);
        }
        let v2 = Path::new("/sys/fs/cgroup");
        let controllers = std::fs::read_to_string(v2.join("cgroup.subtree_control")).ok()?;
        if !controllers.split_whitespace().any(|c| c == "cpu") {
            return None;
        }
        let dir = v2.join(name);
        std::fs::create_dir(&dir).ok()?;
        let group = OneCpuCgroup(dir);
        std::fs::write(group.0.join("cpu.max"), "100000 100000").ok()?;
        Some(group)
    }

    fn procs(&self) -> String {
        self.0.join("cgroup.procs").display().to_string()
    }
}

impl Drop for OneCpuCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn one_worker_per_cpu_the_process_may_use() {
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(workers_when_started_with(&[]), cpus, "unrestricted");
    assert_eq!(
        workers_when_started_with(&["taskset", "-c", "0"]),
        1,
        "pinned to CPU 0"
    );
    match OneCpuCgroup::create() {
        Some(group) => {
            // Join the cgroup, then become tern (same pid).
            let script = format!("echo $$ > {} && exec \"$@\"", group.procs());
            assert_eq!(
                workers_when_started_with(&["sh", "-c", &script, "sh"]),
                1,
                "in a cgroup with a quota of one CPU"
            );
        }
        None => eprintln!(
            "note: no cgroup could be created here (not root, or no cpu controller); \
             the CPU quota case was not run"
        ),
    }
}
