//! The ruleset cache (`ruleset-cache.json` in the state directory): a redeploy with nothing
//! changed takes the ruleset from it instead of reading it, yet whatever changed the ruleset
//! since (another tool's drop, a rule added inside edgenet's own table) moves the kernel's
//! nf_tables generation and is found as before; a damaged file is no cache; remove takes it.

mod support;

use std::process::Output;

use support::*;

const CACHE: &str = "ruleset-cache.json";

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `deploy -vv`: (exit code, everything it printed).
fn deploy_vv(m: &Machine) -> (Option<i32>, String) {
    let out = m.edgenet(&["-vv", "deploy"]);
    (out.status.code(), text(&out))
}

fn from_cache(log: &str) -> bool {
    log.contains("ruleset taken from")
}

fn nft(m: &Machine, cmd: &str) {
    sh(&format!("ip netns exec {} nft {cmd}", m.ns));
}

#[test]
fn a_redeploy_takes_the_cached_ruleset_and_still_finds_what_changed() {
    let Some(m) = machine("c19rc") else { return };
    m.deploy(None);
    let cache = m.state.join(CACHE);
    assert!(cache.is_file(), "a deploy leaves the ruleset cache");

    let (code, log) = deploy_vv(&m);
    assert_eq!(code, Some(0), "{log}");
    assert!(
        from_cache(&log),
        "a no-change redeploy reads the cache:\n{log}"
    );
    assert!(log.contains("No changes"), "{log}");

    // A rule added by hand inside edgenet's own table: the generation moved, the table is read
    // and repaired.
    let id = m.state_id().unwrap();
    nft(
        &m,
        &format!("add rule ip edgenet_{id} forward iifname \"x0\" accept"),
    );
    let (code, log) = deploy_vv(&m);
    assert_eq!(code, Some(0), "{log}");
    assert!(!from_cache(&log), "a changed ruleset is read:\n{log}");
    assert!(
        log.contains(&format!("wrote nftables table ip edgenet_{id}")),
        "{log}"
    );
    // The repair's own write is followed: the next redeploy takes the cache again.
    let (code, log) = deploy_vv(&m);
    assert_eq!(code, Some(0), "{log}");
    assert!(from_cache(&log), "{log}");
    assert!(log.contains("No changes"), "{log}");

    // Another tool's drop of the switch's forwarded traffic, added between two deploys.
    nft(&m, "add table inet c19fw");
    nft(
        &m,
        "'add chain inet c19fw c19chain { type filter hook forward priority 0; policy drop; }'",
    );
    let (code, log) = deploy_vv(&m);
    assert_eq!(
        code,
        Some(1),
        "another firewall's drop refuses the deploy:\n{log}"
    );
    assert!(!from_cache(&log), "{log}");
    assert!(log.contains("c19fw"), "{log}");
    nft(&m, "delete table inet c19fw");

    let (code, log) = deploy_vv(&m);
    assert_eq!(code, Some(0), "{log}");
    assert!(
        !from_cache(&log),
        "the deletion moved the generation:\n{log}"
    );

    // remove takes the cache with everything else.
    m.ok(&["remove"]);
    assert!(!cache.exists());
    assert!(!m.state.exists(), "remove leaves no state directory");
}

#[test]
fn a_damaged_or_stale_cache_file_is_ignored() {
    let Some(m) = machine("c19rd") else { return };
    m.deploy(None);
    let cache = m.state.join(CACHE);
    let good = std::fs::read(&cache).unwrap();

    for (what, bytes) in [
        ("cut short", good[..good.len() / 2].to_vec()),
        ("not JSON", b"\x00\xffgarbage".to_vec()),
        ("empty", Vec::new()),
        (
            "another generation",
            String::from_utf8(good.clone())
                .unwrap()
                .replacen("\"gen\":", "\"gen\":1", 1)
                .into_bytes(),
        ),
        (
            "another namespace",
            String::from_utf8(good.clone())
                .unwrap()
                .replacen("\"netns\":", "\"netns\":9", 1)
                .into_bytes(),
        ),
    ] {
        std::fs::write(&cache, &bytes).unwrap();
        let (code, log) = deploy_vv(&m);
        assert_eq!(code, Some(0), "{what}: {log}");
        assert!(!from_cache(&log), "{what}: taken from the cache:\n{log}");
        assert!(log.contains("No changes"), "{what}: {log}");
        // Read from the kernel, and the cache written again for the next run.
        let (code, log) = deploy_vv(&m);
        assert_eq!(code, Some(0), "{what}: {log}");
        assert!(
            from_cache(&log),
            "{what}: the cache was not written again:\n{log}"
        );
    }
    // A remove refused (run from another namespace) leaves the cache; a complete remove whose
    // tables were deleted by hand already still takes it, and the directory with it.
    let Some(other) = machine("c19rx") else {
        return;
    };
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", other.ns))
        .arg(env!("CARGO_BIN_EXE_edgenet"))
        .arg("remove")
        .env("EDGENET_STATE_DIR", &m.state)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(cache.is_file(), "a refused remove took the cache");
    let id = m.state_id().unwrap();
    nft(&m, &format!("delete table ip edgenet_{id}"));
    nft(&m, &format!("delete table bridge edgenet_{id}"));
    m.ok(&["remove"]);
    assert!(!m.state.exists(), "remove leaves no state directory");
}
