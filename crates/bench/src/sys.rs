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
