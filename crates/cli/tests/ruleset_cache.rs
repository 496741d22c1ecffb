//! The ruleset cache (`ruleset-cache.json` in the state directory): a redeploy with nothing
//! changed takes the ruleset from it instead of reading it, yet whatever changed the ruleset
//! since (another tool's drop, a rule added inside edgenet's own table) moves the kernel's
//! nf_tables generation and is found as before; a damaged file is no cache; remove takes it.
//! Only a regular file of root's under the size cap is read, and it is written 0600; a wrong
//! file with a matching stamp costs at most the run that found it.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

const CACHE: &str = "ruleset-cache.json";

/// `deploy -vv`: (exit code, everything it printed).
fn deploy_vv(m: &Machine) -> (Option<i32>, String) {
    let out = m.edgenet(&["-vv", "deploy"]);
    (out.status.code(), text(&out))
}

/// `deploy -vv` that must end within a minute (a FIFO in the cache's place hung it forever):
/// killed and failed otherwise.
fn deploy_vv_timed(m: &Machine, what: &str) -> (Option<i32>, String) {
    let log = m.dir.path().join("k20-deploy.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut child = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", m.ns))
        .arg(env!("CARGO_BIN_EXE_edgenet"))
        .args(["-vv", "deploy"])
        .env("EDGENET_STATE_DIR", &m.state)
        .env("EDGENET_RESOLV_CONF", &m.resolv)
        .env("NO_COLOR", "1")
        .env_remove("EDGENET_FAILPOINT")
        .env_remove("EDGENET_CONFIG")
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what}: deploy still running after 60 s:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.code(), std::fs::read_to_string(&log).unwrap())
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
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
    // It holds other tools' rules too: private like the rest of the state, even in a state
    // directory others may read.
    std::fs::set_permissions(&m.state, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(mode(&cache), 0o600, "written 0600");

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
    assert_eq!(mode(&cache), 0o600, "written again 0600");

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

/// A FIFO, a link (to `/dev/zero`), a file beyond the cap, another user's file, a directory in
/// the cache's place: no cache, the deploy reads the kernel and ends (a FIFO hung it holding
/// its lock, `/dev/zero` grew it to gigabytes), and writes a real cache in its place.
#[test]
fn only_a_regular_file_of_roots_under_the_cap_is_read() {
    let Some(m) = machine("k20ro") else { return };
    m.deploy(None);
    let cache = m.state.join(CACHE);
    let good = std::fs::read(&cache).unwrap();
    let fresh = |what: &str| {
        let (code, log) = deploy_vv(&m);
        assert_eq!(code, Some(0), "{what}: {log}");
        assert!(from_cache(&log), "{what}: not taken from the file:\n{log}");
    };
    fresh("the real file");
    type Make = Box<dyn Fn(&std::path::Path)>;
    let cases: Vec<(&str, Make, bool)> = vec![
        (
            "a FIFO",
            Box::new(|p| sh(&format!("mkfifo {}", p.display()))),
            true,
        ),
        (
            "a link to /dev/zero",
            Box::new(|p| std::os::unix::fs::symlink("/dev/zero", p).unwrap()),
            true,
        ),
        (
            "a link to the real file",
            Box::new({
                let good = good.clone();
                let dir = m.dir.path().to_path_buf();
                move |p| {
                    let target = dir.join("k20-real.json");
                    std::fs::write(&target, &good).unwrap();
                    std::os::unix::fs::symlink(&target, p).unwrap();
                }
            }),
            true,
        ),
        (
            "a file beyond the cap (the real one, padded)",
            Box::new({
                let good = good.clone();
                move |p| {
                    let mut big = good.clone();
                    big.resize(17 << 20, b' ');
                    std::fs::write(p, big).unwrap();
                }
            }),
            true,
        ),
        (
            "another user's file",
            Box::new({
                let good = good.clone();
                move |p| {
                    std::fs::write(p, &good).unwrap();
                    std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
                }
            }),
            true,
        ),
        (
            "a directory",
            Box::new(|p| std::fs::create_dir(p).unwrap()),
            false,
        ),
    ];
    for (what, make, replaced) in cases {
        std::fs::remove_file(&cache).unwrap();
        make(&cache);
        let (code, log) = deploy_vv_timed(&m, what);
        assert_eq!(code, Some(0), "{what}: {log}");
        assert!(!from_cache(&log), "{what}: taken as the cache:\n{log}");
        assert!(log.contains("No changes"), "{what}: {log}");
        if replaced {
            let meta = std::fs::symlink_metadata(&cache).unwrap();
            assert!(meta.file_type().is_file(), "{what}: not replaced");
            assert_eq!((meta.uid(), mode(&cache)), (0, 0o600), "{what}");
            fresh(what);
        } else {
            std::fs::remove_dir(&cache).unwrap();
            m.ok(&["deploy"]);
        }
    }
    assert_eq!(
        std::fs::read(m.dir.path().join("k20-real.json")).unwrap(),
        good,
        "a link's target is never written"
    );
}

/// A cache with the kernel's stamp but another ruleset (B20 D2: forged from another
/// deployment's): the deploy that trusts it fails at most once, and the next reads the kernel.
#[test]
fn a_wrong_cache_with_the_right_stamp_costs_at_most_one_run() {
    let Some(m) = machine("k20rw") else { return };
    m.deploy(None);
    let cache = m.state.join(CACHE);
    let good: serde_json::Value = serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
    let forge = |items: serde_json::Value| {
        let mut forged = good.clone();
        forged["ruleset"] = serde_json::json!({ "nftables": items });
        std::fs::write(&cache, forged.to_string()).unwrap();
        let (code, log) = deploy_vv(&m);
        assert!(from_cache(&log), "the forged file was not taken:\n{log}");
        (code, log)
    };
    // None of edgenet's tables in it: its `create` finds them (EEXIST), and the one retry
    // reads the kernel, not the file again.
    let (code, log) = forge(serde_json::json!([]));
    assert_eq!(code, Some(0), "the retry read the file again:\n{log}");
    assert!(log.contains("No changes"), "{log}");
    let (code, log) = deploy_vv(&m);
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("No changes"), "{log}");

    // Another firewall's drop that is not in the kernel: refused once, then the file is gone.
    let mut items = good["ruleset"]["nftables"].as_array().unwrap().clone();
    items.push(serde_json::json!({"table": {"family": "inet", "name": "k20fw", "handle": 900}}));
    items.push(
        serde_json::json!({"chain": {"family": "inet", "table": "k20fw", "name": "k20c",
        "handle": 1, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}}),
    );
    let (code, log) = forge(serde_json::Value::Array(items));
    assert_ne!(code, Some(0), "the forged drop was not seen:\n{log}");
    assert!(
        !cache.exists(),
        "a failed deploy left the cache it decided on"
    );
    let (code, log) = deploy_vv(&m);
    assert_eq!(code, Some(0), "the same file failed the next run:\n{log}");
    assert!(!from_cache(&log), "{log}");
}

/// A cache with the kernel's stamp that leaves out edgenet's tables: remove decides on the
/// kernel's listing, so the tables still go (K20's note on B20 D2).
#[test]
fn remove_deletes_the_tables_whatever_the_cache_says() {
    let Some(m) = machine("k20rm") else { return };
    m.deploy(None);
    let cache = m.state.join(CACHE);
    let mut forged: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
    forged["ruleset"] = serde_json::json!({ "nftables": [] });
    std::fs::write(&cache, forged.to_string()).unwrap();
    let out = m.edgenet(&["remove"]);
    assert!(out.status.success(), "{}", text(&out));
    let listing = String::from_utf8_lossy(
        &std::process::Command::new("ip")
            .args(["netns", "exec", &m.ns, "nft", "list", "tables"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(
        !listing.contains("edgenet_"),
        "tables left behind: {listing}"
    );
}

/// A redeploy that found its own tables noted in the cache as planned (nothing read or
/// compared).
fn known(log: &str) -> bool {
    log.contains("nftables tables known from the ruleset cache: as planned")
}

/// edgenet's two tables as the kernel lists them (`nft -j`), handles left out; `null` for one
/// that is not there.
fn own_tables(m: &Machine, id: &str) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(o) => {
                o.remove("handle");
                o.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let list = |family: &str| {
        let out = Command::new("ip")
            .args(["netns", "exec", &m.ns, "nft", "-j", "list", "table", family])
            .arg(format!("edgenet_{id}"))
            .output()
            .unwrap();
        let mut v: serde_json::Value = if out.status.success() {
            serde_json::from_slice(&out.stdout).unwrap()
        } else {
            serde_json::Value::Null
        };
        if let Some(items) = v.get_mut("nftables").and_then(|i| i.as_array_mut()) {
            items.retain(|i| i.get("metainfo").is_none());
        }
        strip(&mut v);
        v
    };
    serde_json::json!({"ip": list("ip"), "bridge": list("bridge")})
}

/// What the last run noted of edgenet's tables in the cache stands only while the kernel's
/// nf_tables generation proves nothing changed: a rule added by hand in either table, a table
/// deleted, the ruleset flushed, another tool's table added — each redeploy after one reads the
/// kernel, repairs or reports as before (the kernel's tables are the planned ones again), and
/// the later redeploys know their tables from the cache again.
#[test]
fn own_tables_are_known_from_the_cache_only_while_nothing_changed_the_ruleset() {
    let Some(m) = machine_prefixed("r3", "own") else {
        return;
    };
    m.deploy(None);
    let id = m.state_id().unwrap();
    let planned = own_tables(&m, &id);
    assert!(!planned["ip"].is_null() && !planned["bridge"].is_null());
    let (code, log) = deploy_vv(&m);
    assert_eq!(code, Some(0), "{log}");
    assert!(known(&log), "a no-change redeploy after a deploy:\n{log}");
    assert!(log.contains("No changes"), "{log}");
    assert_eq!(own_tables(&m, &id), planned);

    let changes: Vec<(String, Option<&str>)> = vec![
        (
            format!("add rule ip edgenet_{id} forward iifname \"x0\" accept"),
            Some("wrote nftables table ip"),
        ),
        (
            format!("add rule bridge edgenet_{id} forward counter"),
            Some("wrote nftables table bridge"),
        ),
        (
            format!("delete table bridge edgenet_{id}"),
            Some("wrote nftables table bridge"),
        ),
        (
            format!("delete table ip edgenet_{id}"),
            Some("wrote nftables table ip"),
        ),
        ("flush ruleset".to_string(), Some("wrote nftables table ip")),
        // Another tool's table that lets everything through: nothing of ours to repair.
        ("add table inet r3other".to_string(), None),
    ];
    for (change, said) in changes {
        // The bridge table's chain may be named otherwise: a rule in whatever it has.
        let change = if change.starts_with("add rule bridge") {
            let chain = planned["bridge"]["nftables"]
                .as_array()
                .unwrap()
                .iter()
                .find_map(|i| i["chain"]["name"].as_str())
                .unwrap()
                .to_string();
            format!("add rule bridge edgenet_{id} {chain} counter")
        } else {
            change
        };
        nft(&m, &format!("'{change}'"));
        if said.is_some() {
            assert_ne!(own_tables(&m, &id), planned, "{change}: no change made");
        }
        let (code, log) = deploy_vv(&m);
        assert_eq!(code, Some(0), "{change}: {log}");
        assert!(!known(&log), "{change}: taken as unchanged:\n{log}");
        match said {
            Some(said) => assert!(log.contains(said), "{change}: not repaired:\n{log}"),
            None => assert!(log.contains("No changes"), "{change}: {log}"),
        }
        assert_eq!(
            own_tables(&m, &id),
            planned,
            "{change}: the kernel's tables"
        );
        // A ruleset read through libnftables (a hand-made rule the native reader does not
        // decode) has no known generation, and is not cached: the next run reads the kernel
        // once more; the one after knows its tables again.
        for _ in 0..2 {
            let (code, log) = deploy_vv(&m);
            assert_eq!(code, Some(0), "{change}: {log}");
            assert!(log.contains("No changes"), "{change}: {log}");
        }
        let (code, log) = deploy_vv(&m);
        assert_eq!(code, Some(0), "{change}: {log}");
        assert!(known(&log), "{change}: still read again:\n{log}");
    }
    nft(&m, "delete table inet r3other");
    m.ok(&["remove"]);
}

/// Another config between two deploys, nothing changed in the kernel (its generation is the
/// one the cache was stamped with): the tables noted are not the ones now planned, so they are
/// built, compared and rewritten; another executable builds and compares them too; and going
/// back to the first config rewrites them again.
#[test]
fn a_changed_plan_is_compared_and_written_though_the_ruleset_did_not_change() {
    let Some(m) = machine_prefixed("r3", "plan") else {
        return;
    };
    m.deploy(None);
    let id = m.state_id().unwrap();
    let plain = own_tables(&m, &id);
    let forwards = m.write_config(
        "forwards.json",
        &serde_json::json!({"Machines": [{"LinuxNode": {}}], "Edgenet": {"PortForwards": [
            {"Protocol": "tcp", "HostPort": 8080, "Node": "linux", "NodePort": 30080}
        ]}}),
    );
    let out = m.edgenet(&["-vv", "deploy", "-c", &forwards]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(from_cache(&log), "the kernel did not change:\n{log}");
    assert!(!known(&log), "other tables planned, taken as known:\n{log}");
    assert!(
        log.contains(&format!("wrote nftables table ip edgenet_{id}")),
        "{log}"
    );
    let with = own_tables(&m, &id);
    assert_ne!(with, plain);
    assert!(with.to_string().contains("30080"), "{with}");
    let (code, log) = deploy_vv(&m);
    assert_eq!(code, Some(0), "{log}");
    assert!(known(&log), "{log}");
    assert_eq!(own_tables(&m, &id), with);

    // Another executable (a copy: another inode, as an upgrade gives) builds the tables anew
    // and compares them; the next run of that same copy knows them.
    let copy = m.dir.path().join("r3-edgenet-copy");
    std::fs::copy(env!("CARGO_BIN_EXE_edgenet"), &copy).unwrap();
    let by_copy = || {
        let out = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", m.ns))
            .arg(&copy)
            .args(["-vv", "deploy"])
            .env("EDGENET_STATE_DIR", &m.state)
            .env("EDGENET_RESOLV_CONF", &m.resolv)
            .env("NO_COLOR", "1")
            .env_remove("EDGENET_FAILPOINT")
            .env_remove("EDGENET_CONFIG")
            .output()
            .unwrap();
        (out.status.code(), text(&out))
    };
    let (code, log) = by_copy();
    assert_eq!(code, Some(0), "{log}");
    assert!(from_cache(&log), "the kernel did not change:\n{log}");
    assert!(!known(&log), "another executable, taken as known:\n{log}");
    assert!(log.contains("No changes"), "{log}");
    let (code, log) = by_copy();
    assert_eq!(code, Some(0), "{log}");
    assert!(known(&log), "{log}");
    std::fs::remove_file(&copy).unwrap();

    let default = m.default_config();
    let out = m.edgenet(&["-vv", "deploy", "-c", &default]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(!known(&log), "{log}");
    assert!(
        log.contains(&format!("wrote nftables table ip edgenet_{id}")),
        "{log}"
    );
    assert_eq!(own_tables(&m, &id), plain);
    m.ok(&["remove"]);
}
