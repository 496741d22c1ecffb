//! What every bench does to the system the same way: hand a script to a program (`ip -batch
//! -`, `nft -f -`) and delete its network namespaces with the notes edgenet keeps about them.

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `argv` with `input` on its standard input; panics with its standard error when it
/// fails. Its standard output is dropped. The input is written from another thread, so a
/// program that writes much on stderr before it has read all of its input cannot stall it.
pub(crate) fn feed(argv: &[&str], input: &str) {
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let out = std::thread::scope(|s| {
        let writer = s.spawn(move || stdin.write_all(input.as_bytes()));
        let out = child.wait_with_output();
        (writer.join().expect("the writer does not panic"), out)
    });
    let (written, out) = out;
    let out = out.unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    assert!(
        out.status.success(),
        "{argv:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    written.unwrap_or_else(|e| panic!("{argv:?}: writing its input: {e}"));
}

/// Deletes the notes edgenet keeps in /run/edgenet about the named network namespace (a
/// deploy's forwarding evidence, keyed by the namespace's inode: the kernel gives that inode to
/// a later namespace), as `edgenet remove` and the tests' guards do; for a namespace about to be
/// deleted by other means (`ip -batch`). Nothing happens when it is not there.
pub(crate) fn forget_notes(name: &str) {
    use std::os::unix::fs::MetadataExt;
    if let Ok(meta) = std::fs::metadata(std::path::Path::new("/run/netns").join(name)) {
        edgenet_host::lock::forget_namespace_notes(meta.dev(), meta.ino());
    }
}

/// Deletes the named network namespace (nothing there is fine) and, first, its notes.
pub(crate) fn del_netns(name: &str) {
    forget_notes(name);
    let _ = Command::new("ip")
        .args(["netns", "del", name])
        .stderr(Stdio::null())
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_gives_the_input_and_says_the_failure_with_its_stderr() {
        feed(&["sh", "-c", "read x && test \"$x\" = o24"], "o24\n");
        let failed = std::panic::catch_unwind(|| {
            feed(
                &["sh", "-c", "cat >/dev/null; echo o24-broken >&2; exit 3"],
                "x\n",
            )
        })
        .unwrap_err();
        let said = failed.downcast_ref::<String>().unwrap();
        assert!(
            said.contains("o24-broken") && said.contains("exit status: 3"),
            "{said}"
        );
        // Much on stderr before the input is read (more than a pipe holds) does not stall it.
        let input = "x".repeat(1 << 20);
        feed(
            &["sh", "-c", "head -c 300000 /dev/zero >&2; cat >/dev/null"],
            &input,
        );
    }

    #[test]
    fn a_namespace_goes_with_the_notes_about_it() {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root");
            return;
        }
        use std::os::unix::fs::MetadataExt;
        let name = format!("o24-bench-notes-{}", std::process::id());
        del_netns(&name);
        let made = Command::new("ip").args(["netns", "add", &name]).status();
        assert!(made.unwrap().success());
        let meta = std::fs::metadata(format!("/run/netns/{name}")).unwrap();
        std::fs::create_dir_all(edgenet_host::lock::RUN_DIR).unwrap();
        let note = std::path::Path::new(edgenet_host::lock::RUN_DIR).join(format!(
            "netns-{}-{}.o24-bench-test",
            meta.dev(),
            meta.ino()
        ));
        std::fs::write(&note, "o24\n").unwrap();
        del_netns(&name);
        assert!(!std::path::Path::new("/run/netns").join(&name).exists());
        let left = note.exists();
        let _ = std::fs::remove_file(&note);
        assert!(!left, "{} is left", note.display());
    }
}

/// The whole machine's CPU time by kind, from the first line of /proc/stat (every process and
/// the kernel's own work, so only meaningful on an otherwise quiet machine). What the wall time
/// of a many-process run on a few cores is made of: `softirq` is mostly received frames.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct CpuTimes {
    pub user: f64,
    pub system: f64,
    pub softirq: f64,
    pub idle: f64,
}

impl CpuTimes {
    /// Now, in seconds since boot (summed over all CPUs); zero when /proc/stat is unreadable.
    pub fn now() -> CpuTimes {
        std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| CpuTimes::parse(&s))
            .unwrap_or_default()
    }

    fn parse(stat: &str) -> Option<CpuTimes> {
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let ticks: Vec<f64> = line
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap_or(0.0))
            .collect();
        let t = |i: usize| ticks.get(i).copied().unwrap_or(0.0);
        // SAFETY: sysconf reads a constant of the C library.
        let hz = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
            n if n > 0 => n as f64,
            _ => 100.0,
        };
        // user nice system idle iowait irq softirq steal
        Some(CpuTimes {
            user: (t(0) + t(1)) / hz,
            system: t(2) / hz,
            softirq: (t(5) + t(6)) / hz,
            idle: (t(3) + t(4) + t(7)) / hz,
        })
    }

    /// The time spent between `earlier` and `self`.
    pub fn since(self, earlier: CpuTimes) -> CpuTimes {
        CpuTimes {
            user: self.user - earlier.user,
            system: self.system - earlier.system,
            softirq: self.softirq - earlier.softirq,
            idle: self.idle - earlier.idle,
        }
    }

    /// "user 2.4 s, sys 5.4 s, softirq 4.1 s, idle 0.7 s".
    pub fn line(&self) -> String {
        format!(
            "user {:.1} s, sys {:.1} s, softirq {:.1} s, idle {:.1} s",
            self.user, self.system, self.softirq, self.idle
        )
    }
}

#[cfg(test)]
mod cpu_tests {
    use super::CpuTimes;

    #[test]
    fn the_first_cpu_line_is_read_by_kind() {
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let stat = "cpu  100 20 300 4000 50 6 70 8 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        let t = CpuTimes::parse(stat).unwrap();
        assert_eq!(t.user, 120.0 / hz);
        assert_eq!(t.system, 300.0 / hz);
        assert_eq!(t.softirq, 76.0 / hz);
        assert_eq!(t.idle, 4058.0 / hz);
        let later = CpuTimes::parse("cpu  200 20 400 4100 50 6 80 8 0 0\n").unwrap();
        let d = later.since(t);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(
            close(d.user, 100.0 / hz) && close(d.system, 100.0 / hz),
            "{d:?}"
        );
        assert!(
            close(d.softirq, 10.0 / hz) && close(d.idle, 100.0 / hz),
            "{d:?}"
        );
        assert!(CpuTimes::parse("intr 1 2\n").is_none());
    }
}
