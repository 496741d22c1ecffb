//! nftables in-process (libnftables) against the `nft` program, on real tables inside throwaway
//! namespaces: the same documents give the same ruleset, the same listings and the same errors.

mod common;

use common::{root_or_skip, TestNs};
use edgenet_host::nft::{library, Backend, Nft, NftError};
use serde_json::{json, Value};

/// The two ways of running nftables: the default (libnftables when it loads, which it must
/// wherever the `nftables` package is installed) and the program by its full path.
fn both() -> (Nft, Nft) {
    library::load().expect("libnftables.so.1 loads where nftables is installed");
    let lib = Nft::new();
    assert_eq!(lib.backend(), Backend::Library);
    let program = lib.locate().expect("nft on PATH");
    let proc = Nft::with_program(program);
    assert_eq!(proc.backend(), Backend::Process);
    (lib, proc)
}

fn ns(test: &str) -> TestNs {
    TestNs::named(format!("p10-{}-{test}", std::process::id()))
}

fn table_doc(family: &str, name: &str) -> Value {
    json!({"nftables": [
        {"add": {"table": {"family": family, "name": name}}},
        {"add": {"chain": {"family": family, "table": name, "name": "post",
            "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}},
        {"add": {"rule": {"family": family, "table": name, "chain": "post", "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                "right": {"prefix": {"addr": "192.168.0.0", "len": 24}}}},
            {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                "right": {"prefix": {"addr": "192.168.0.0", "len": 24}}}},
            {"counter": {"packets": 0, "bytes": 0}},
            {"masquerade": null}
        ]}}},
        {"add": {"chain": {"family": family, "table": name, "name": "fwd",
            "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}}},
        {"add": {"rule": {"family": family, "table": name, "chain": "fwd", "expr": [
            {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "br0"}},
            {"match": {"op": "in", "left": {"ct": {"key": "state"}},
                "right": ["established", "related"]}},
            {"accept": null}
        ]}}}
    ]})
}

/// A listing without the `handle`s, which count up with every object the kernel makes.
fn without_handles(mut v: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(o) => {
                o.remove("handle");
                o.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

#[test]
fn in_process_and_program_write_and_list_the_same_ruleset() {
    if !root_or_skip("in_process_and_program_write_and_list_the_same_ruleset") {
        return;
    }
    let (lib, proc) = both();
    let a = ns("nft-same");
    a.run(|| {
        lib.apply(&table_doc("ip", "p10lib")).unwrap();
        proc.apply(&table_doc("ip", "p10proc")).unwrap();
        // The same live ruleset, listed both ways: byte-for-byte the same JSON.
        let by_lib = lib.clone().without_native().list_ruleset().unwrap();
        let by_proc = proc.list_ruleset().unwrap();
        assert_eq!(by_lib, by_proc);
        // The default reads these tables natively (they are in the forms it decodes): the
        // same items, with a metainfo item that does not name nft's version.
        let items = |v: &Value| -> Vec<Value> { v["nftables"].as_array().unwrap()[1..].to_vec() };
        assert_eq!(items(&lib.list_ruleset().unwrap()), items(&by_lib));
        // What each wrote is the same table (only the name and handles differ).
        let mine = |nft: &Nft, name: &str| {
            let t = nft.list_table("ip", name).unwrap().unwrap();
            let s = serde_json::to_string(&without_handles(t)).unwrap();
            s.replace(name, "T")
        };
        assert_eq!(mine(&lib, "p10lib"), mine(&proc, "p10proc"));
        assert_eq!(mine(&proc, "p10lib"), mine(&lib, "p10lib"));
        let rules = by_lib["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i.get("rule").is_some())
            .count();
        assert_eq!(rules, 4, "{by_lib}");
    });
    // The kernel agrees (read by the nft program outside our code, in the namespace).
    let listed: Value = serde_json::from_str(&a.exec(&["nft", "-j", "list", "tables"])).unwrap();
    let names: Vec<&str> = listed["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["table"]["name"].as_str())
        .collect();
    assert_eq!(names, ["p10lib", "p10proc"]);
    a.run(|| {
        // Deleting: both report whether the table existed.
        assert!(lib.delete_table("ip", "p10proc").unwrap());
        assert!(proc.delete_table("ip", "p10lib").unwrap());
        assert!(!lib.delete_table("ip", "p10lib").unwrap());
        assert!(!proc.delete_table("ip", "p10proc").unwrap());
        assert_eq!(lib.list_table("ip", "p10lib").unwrap(), None);
        assert_eq!(proc.list_table("ip", "p10lib").unwrap(), None);
    });
}

/// The error text of a failed command, which is what callers and users read.
fn stderr_of(result: Result<(), NftError>) -> String {
    match result {
        Err(NftError::Failed { stderr, .. }) => stderr,
        other => panic!("expected nft to fail, got {other:?}"),
    }
}

#[test]
fn in_process_and_program_fail_with_the_same_errors() {
    if !root_or_skip("in_process_and_program_fail_with_the_same_errors") {
        return;
    }
    let (lib, proc) = both();
    let a = ns("nft-errors");
    a.run(|| {
        // Refused by the parser: an unknown family.
        let bad = json!({"nftables": [{"add": {"table": {"family": "nosuch", "name": "t"}}}]});
        let e = stderr_of(lib.apply(&bad));
        assert_eq!(e, stderr_of(proc.apply(&bad)));
        assert!(e.contains("nosuch"), "{e}");
        // Not JSON nftables knows at all.
        let bad = json!({"nftables": [{"frobnicate": {}}]});
        let e = stderr_of(lib.apply(&bad));
        assert_eq!(e, stderr_of(proc.apply(&bad)));
        assert!(e.contains("Error:"), "{e}");
        // Refused by the kernel: a chain in a table that does not exist.
        let bad = json!({"nftables": [{"add": {"chain": {"family": "ip", "table": "none", "name": "c"}}}]});
        let e = stderr_of(lib.apply(&bad));
        assert_eq!(e, stderr_of(proc.apply(&bad)));
        assert!(e.contains("No such file or directory"), "{e}");
        // `create` of a table that exists: "File exists", which deploy reads.
        let create = json!({"nftables": [{"create": {"table": {"family": "ip", "name": "p10x"}}}]});
        lib.apply(&create).unwrap();
        // The same kernel words; the native write (which takes `create table`) names the
        // command that failed as well.
        let (native, program) = (stderr_of(lib.apply(&create)), stderr_of(proc.apply(&create)));
        for e in [&native, &program] {
            assert!(e.contains("Error: Could not process rule: File exists"), "{e}");
        }
        assert!(native.contains("first at command 1 of 1: create table ip p10x"), "{native}");
        // A failed transaction changed nothing.
        let half = json!({"nftables": [
            {"add": {"table": {"family": "ip", "name": "p10half"}}},
            {"add": {"chain": {"family": "ip", "table": "none", "name": "c"}}}
        ]});
        stderr_of(lib.apply(&half));
        assert_eq!(lib.list_table("ip", "p10half").unwrap(), None);
        // The full message names the command and says which way it ran.
        let msg = lib.apply(&half).unwrap_err().to_string();
        assert!(msg.contains("nft -j -f -") && msg.contains("libnftables"), "{msg}");
    });
}

#[test]
fn in_process_calls_act_in_the_calling_threads_namespace() {
    if !root_or_skip("in_process_calls_act_in_the_calling_threads_namespace") {
        return;
    }
    let (lib, _) = both();
    let a = ns("nft-a");
    let b = ns("nft-b");
    // Both namespaces at once, from two threads: each sees only its own table.
    std::thread::scope(|s| {
        for (n, name) in [(&a, "p10a"), (&b, "p10b")] {
            let lib = lib.clone();
            s.spawn(move || {
                n.run(|| {
                    for _ in 0..20 {
                        lib.apply(&table_doc("inet", name)).unwrap();
                        let listed = lib.list_ruleset().unwrap();
                        let tables: Vec<&str> = listed["nftables"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .filter_map(|i| i["table"]["name"].as_str())
                            .collect();
                        assert_eq!(tables, [name]);
                        assert!(lib.delete_table("inet", name).unwrap());
                    }
                    lib.apply(&table_doc("inet", name)).unwrap();
                })
            });
        }
    });
    for (n, name) in [(&a, "p10a"), (&b, "p10b")] {
        let out = n.exec(&["nft", "list", "tables"]);
        assert_eq!(out.trim(), format!("table inet {name}"));
    }
    // A third namespace got nothing.
    let c = ns("nft-c");
    assert_eq!(c.run(|| lib.list_table("inet", "p10a").unwrap()), None);
}
