//! Ctrl-C (SIGINT), SIGTERM or SIGHUP during a `deploy` or `remove`: the run stops where it is,
//! as a kill would (every step is journaled first, so the next deploy converges and `remove`
//! cleans), but not silently. The handler says on stderr that the run was interrupted and what
//! to do, prints the failure envelope on stdout with `-o json`, then ends the process by the
//! same signal (exit status 128 + N in a shell: 130, 143, 129), as the convention for
//! interrupted programs asks, so a calling shell stops too. Once the run is over (its report
//! printed, or the command returned) a signal is ignored: the process ends with the report's
//! status instead of contradicting it.
//!
//! A `deploy`'s message lists what the run changed so far (B26 F1: its report, which lists the
//! changes, is never printed): each change is told as it is made ([`changed`]), rendered into
//! a line then, and appended to a list the handler reads without a lock.
//!
//! Everything the handler writes is rendered before the handler runs (the messages before it
//! is installed, each change line when the change is made): it only reads atomics and calls
//! `write(2)` and `raise(3)`, which are async-signal-safe. A SIGKILL ends the process without
//! a word; then `edgenet status` shows what is on the host.
//!
//! From the process's first instruction of its own (a constructor run before `main`) until the
//! command line is parsed, the three signals are blocked ([`hold_early`]): one that arrives
//! then waits, and is delivered when [`release`] unblocks them — to the handler, for a
//! `deploy` or `remove`, which then says it was interrupted; to the default action (the
//! process ends by it, as before) for any other command. So even a signal sent right after
//! the process started gets its envelope. Only one that arrives while the kernel and the
//! dynamic loader are still starting the program (before any of edgenet's code runs) ends it
//! silently.

use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::{Mutex, OnceLock};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};

use crate::envelope::{self, Schema};
use crate::exit::Exit;

/// The signals handled, with what is written for each.
/// SIGHUP: the terminal or SSH session went away (its words may have nowhere to go; the exit
/// status, 129, still says it).
const SIGNALS: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

struct Words {
    /// Per signal of [`SIGNALS`]: the stderr text, and the JSON envelope (`-o json`).
    text: [String; 3],
    json: [Option<String>; 3],
    /// After the text: what the run changed so far ([`changed`]), or, if it told none, this.
    none_changed: Option<String>,
}

/// One change line of the run, as the handler writes it. Lines are never freed (they live as
/// long as the process), so the handler may follow `next` without a lock.
struct Line {
    text: &'static [u8],
    next: AtomicPtr<Line>,
}

/// The run's first change line (null: none yet), and the last, where the next one goes: the
/// handler reads the list from `FIRST`; only [`changed`] (never the handler) takes `LAST`.
static FIRST: AtomicPtr<Line> = AtomicPtr::new(std::ptr::null_mut());
static LAST: Mutex<Option<&'static Line>> = Mutex::new(None);

/// Notes a change the run made (a `deploy`'s, told as it is made): an interrupted run lists
/// them (B26 F1), as a failed one does, since its report, which lists them, is never printed.
pub fn changed(what: &str) {
    let line: &'static Line = Box::leak(Box::new(Line {
        text: format!("  changed: {what}\n").into_bytes().leak(),
        next: AtomicPtr::new(std::ptr::null_mut()),
    }));
    let ptr = line as *const Line as *mut Line;
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    match *last {
        None => FIRST.store(ptr, Ordering::Release),
        Some(before) => before.next.store(ptr, Ordering::Release),
    }
    *last = Some(line);
}

/// Writes the change lines noted so far; whether there was one. Async-signal-safe: atomic
/// loads and write(2).
fn write_changes(fd: BorrowedFd<'_>) -> bool {
    let mut at = FIRST.load(Ordering::Acquire);
    let any = !at.is_null();
    while !at.is_null() {
        // SAFETY: every pointer in the list comes from `Box::leak` and is never freed; it is
        // published (Release) only once the line it points to is complete.
        let line = unsafe { &*at };
        write_all(fd, line.text);
        at = line.next.load(Ordering::Acquire);
    }
    any
}

static WORDS: OnceLock<Words> = OnceLock::new();
/// A handler started: the first says it and ends the process; any later one (the same signal
/// sent to the process group reaches another thread) waits for that.
static FIRED: AtomicBool = AtomicBool::new(false);
/// The command's report went to stdout: a second JSON document would break it.
static REPORTED: AtomicBool = AtomicBool::new(false);

/// Blocks the handled signals for the whole process: run by the loader before `main` (see
/// [`HOLD_EARLY`]), when no thread but this one exists.
#[cfg_attr(test, allow(dead_code))]
extern "C" fn hold_early() {
    let _ = signal::sigprocmask(signal::SigmaskHow::SIG_BLOCK, Some(&handled()), None);
}

/// [`hold_early`] in the program's constructors (`.init_array`), which run before `main`
/// (and before the Rust runtime's own start): as early as code of edgenet's can run. Not in
/// the unit tests' binary, whose Ctrl-C must stay the default.
#[cfg(all(not(test), target_os = "linux"))]
#[used]
#[link_section = ".init_array"]
static HOLD_EARLY: extern "C" fn() = hold_early;

fn handled() -> SigSet {
    let mut set = SigSet::empty();
    for s in SIGNALS {
        set.add(s);
    }
    set
}

/// Unblocks the handled signals: one that arrived since the start is delivered now, to the
/// handler when [`install`] ran first, else to its default action. Called once the command
/// line is parsed, before any thread or child process is started (they would inherit the
/// mask).
pub fn release() {
    let _ = signal::sigprocmask(signal::SigmaskHow::SIG_UNBLOCK, Some(&handled()), None);
}

/// Called just before the report is printed (see `envelope::emit`) and when the command
/// returned: from here on a signal is ignored.
pub fn reporting() {
    REPORTED.store(true, Ordering::SeqCst);
}

/// What an interrupted `command` (`deploy`, `remove`) tells the operator.
pub fn message(command: &str, signal: Signal) -> (String, String) {
    let message = format!(
        "{command} interrupted by {} part-way: what it did so far stays on the host",
        signal.as_str()
    );
    let hint = match command {
        "remove" => "run `edgenet remove` again to finish removing".to_string(),
        _ => "run the same `edgenet deploy` again (the same -c, if it had one): it picks up where this run stopped and converges; or `edgenet remove` to take everything away".to_string(),
    };
    (message, hint)
}

/// The failure envelope of an interrupted run: exit 128 + the signal, code `interrupted`.
pub fn envelope(schema: &Schema, command: &str, signal: Signal) -> serde_json::Value {
    let (message, hint) = message(command, signal);
    let status = 128 + signal as i32;
    let mut error = envelope::error_object("interrupted", &message, Some(&hint), Exit::Host);
    error["exit"] = status.into();
    let mut v = envelope::wrap(schema, Exit::Host, Some(error), &serde_json::Value::Null);
    v["exit"] = status.into();
    v
}

/// Installs the handler for `command`'s run (`json`: `-o json`).
pub fn install(command: &'static str, schema: &Schema, json: bool) {
    let text = SIGNALS.map(|s| {
        let (message, hint) = message(command, s);
        format!("\nedgenet: {message}\n  hint: {hint}\n")
    });
    let json = SIGNALS.map(|s| {
        json.then(|| {
            format!(
                "{}\n",
                serde_json::to_string_pretty(&envelope(schema, command, s)).expect("serializes")
            )
        })
    });
    // A deploy tells its changes as it makes them (see `changed`); said when it told none.
    let none_changed = (command == "deploy").then(|| {
        "  changed: nothing it could tell yet (a step under way may have begun: `edgenet status` shows what is on the host)\n".to_string()
    });
    if WORDS
        .set(Words {
            text,
            json,
            none_changed,
        })
        .is_err()
    {
        return;
    }
    // Not SA_RESETHAND: `timeout` and a terminal send the signal to the process and to its
    // group, so it often comes twice; reset on the first, the second reached another thread with
    // the default disposition and ended the run before a word was written.
    // The other handled signals are held while one is handled on a thread: nested in the same
    // thread, the second would wait for the first, which waits for it to return.
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        handled(),
    );
    for s in SIGNALS {
        // SAFETY: the handler only reads data set before it was installed, and calls
        // write(2), sigaction(2) and raise(3) (async-signal-safe).
        if let Ok(before) = unsafe { signal::sigaction(s, &action) } {
            // Ignored by whoever started us (`nohup`, `trap '' INT`): it stays ignored.
            if before.handler() == SigHandler::SigIgn {
                // SAFETY: SIG_IGN installs no code.
                let _ = unsafe { signal::sigaction(s, &before) };
            }
        }
    }
}

extern "C" fn on_signal(raw: nix::libc::c_int) {
    let Some(i) = SIGNALS.iter().position(|s| *s as i32 == raw) else {
        return;
    };
    if REPORTED.load(Ordering::SeqCst) {
        // The run is over and its report printed; the process is ending with the report's
        // status. Ended by the signal now, it would say "interrupted" beside a success.
        return;
    }
    if FIRED.swap(true, Ordering::SeqCst) {
        // Another thread is saying it and then ends the process.
        loop {
            nix::unistd::pause();
        }
    }
    if let Some(words) = WORDS.get() {
        // SAFETY: 1 and 2 are open for the whole process (stdout, stderr).
        let (out, err) = unsafe { (BorrowedFd::borrow_raw(1), BorrowedFd::borrow_raw(2)) };
        if let Some(json) = &words.json[i] {
            write_all(out, json.as_bytes());
        }
        write_all(err, words.text[i].as_bytes());
        if !write_changes(err) {
            if let Some(none) = &words.none_changed {
                write_all(err, none.as_bytes());
            }
        }
    }
    // The other handled signals ignored (one already pending is discarded: the run is said to
    // end by this one), this one's default disposition, then this signal again: delivered when
    // this handler returns, it ends the process as the signal would have.
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for (j, s) in SIGNALS.iter().enumerate() {
        let how = if j == i { &default } else { &ignore };
        // SAFETY: sigaction(2) is async-signal-safe; SIG_DFL and SIG_IGN install no code.
        let _ = unsafe { signal::sigaction(*s, how) };
    }
    let _ = signal::raise(SIGNALS[i]);
}

fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(0) => return,
            Ok(n) => bytes = &bytes[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_is_the_commands_schema_with_exit_128_plus_the_signal() {
        let v = envelope(&envelope::DEPLOY, "deploy", Signal::SIGINT);
        assert_eq!(v["schema"], "edgenet.deploy/v1");
        assert_eq!(v["ok"], false);
        assert_eq!(v["exit"], 130);
        assert_eq!(v["error"]["code"], "interrupted");
        assert_eq!(v["error"]["exit"], 130);
        assert!(v["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("edgenet deploy"));
        for key in envelope::DEPLOY.keys {
            assert!(v[key].is_null(), "{key}");
        }
        let v = envelope(&envelope::REMOVE, "remove", Signal::SIGTERM);
        assert_eq!(v["exit"], 143);
        assert!(v["error"]["message"].as_str().unwrap().contains("SIGTERM"));
    }
}
