//! `Machines[].NodeRuntime`: one machine's nodes as VMs, another's as namespaces, in one
//! config; a bad value names its field.

mod common;

use common::*;
use edgenet_core::config::{load, NodeRuntime};
use edgenet_core::plan;
use edgenet_core::validate::{Context, Severity};
use serde_json::{json, Value};

/// The scalable fixture with a second machine.
fn two_machines() -> Value {
    let mut v = set(
        fixture("aksee-scalable-first.json"),
        "Machines/0/MachineName",
        json!("m1"),
    );
    let second = json!({
        "MachineName": "m2",
        "NetworkConnection": {"AdapterName": "eth0"},
        "LinuxNode": {"ControlPlane": false, "Ip4Address": "192.168.1.172"}
    });
    v["Machines"].as_array_mut().unwrap().push(second);
    v
}

#[test]
fn a_machine_overrides_the_node_runtime_of_the_edgenet_block() {
    let mixed = set(two_machines(), "Machines/0/NodeRuntime", json!("vm"));
    let loaded = load(mixed.to_string().as_bytes()).unwrap();
    assert!(
        loaded.config.machines.len() >= 2,
        "the fixture has two machines"
    );
    assert_eq!(loaded.config.node_runtime(0), NodeRuntime::Vm);
    assert_eq!(loaded.config.node_runtime(1), NodeRuntime::Netns);
    assert!(loaded.config.any_vm());
    assert_clean(&run_offline(&mixed));
    // The plan of each machine carries its own runtime.
    for (index, want) in [(0, NodeRuntime::Vm), (1, NodeRuntime::Netns)] {
        let mut ctx = Context::offline("test", "edge01");
        ctx.machine = Some(index);
        let p = plan::build(&loaded.config, &ctx).unwrap();
        assert_eq!(p.node_runtime, want, "machine {index}");
    }
    // The other way round: the Edgenet block says vm, one machine keeps namespaces.
    let v = set(
        set(two_machines(), "Edgenet/NodeRuntime", json!("vm")),
        "Machines/1/NodeRuntime",
        json!("netns"),
    );
    let c = load(v.to_string().as_bytes()).unwrap().config;
    assert_eq!(c.node_runtime(0), NodeRuntime::Vm);
    assert_eq!(c.node_runtime(1), NodeRuntime::Netns);
}

#[test]
fn a_bad_machine_runtime_names_its_field_and_the_choices() {
    let bad = set(two_machines(), "Machines/1/NodeRuntime", json!("kvm"));
    let f = assert_has(
        &run_offline(&bad),
        "unknown-value",
        "Machines[1].NodeRuntime",
        Severity::Error,
    );
    assert!(f.message.contains("\"kvm\""), "{}", f.message);
    assert!(f.message.contains("netns, vm"), "{}", f.message);
    let f = assert_has(
        &run_offline(&set(two_machines(), "Machines/0/NodeRuntime", json!(true))),
        "wrong-type",
        "Machines[0].NodeRuntime",
        Severity::Error,
    );
    assert!(
        f.message.contains("Machines[0].NodeRuntime"),
        "{}",
        f.message
    );
}
