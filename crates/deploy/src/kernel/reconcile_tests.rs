//! Reconcile logic against the recording fake kernel: no root, no kernel objects.

use std::path::Path;

use edgenet_core::mac::MacAddr;
use edgenet_core::plan::{SwitchKind, SwitchPlan};

use super::fake::{FakeJournal, FakeKernel};
use super::Kernel;
use crate::error::DeployError;
use crate::state::{KernelObject, ObjectKind, ObjectStatus};
use crate::switch::{self, AdapterRecord, AdapterSnapshot, SwitchDriver};
use crate::teardown::Teardown;

const MAC: MacAddr = MacAddr([0x0e, 1, 2, 3, 4, 5]);

fn internal_plan() -> SwitchPlan {
    crate::firewall::tests::sample_plan().switch
}

fn external_plan() -> SwitchPlan {
    SwitchPlan {
        name: "br-ext".into(),
        kind: SwitchKind::External,
        adapter: Some("up0".into()),
        host_address: None,
        mtu: None,
        ..internal_plan()
    }
}

/// The internal switch's driver as deploy builds it (its MAC generated once and kept).
fn internal_driver(
    k: &mut FakeKernel,
    j: &mut FakeJournal,
    plan: &SwitchPlan,
) -> Box<dyn SwitchDriver> {
    let own = j.own();
    let prepared = switch::prepare(k, &mut j.state, plan, &own, &[]).unwrap();
    assert_eq!(prepared.mtu, 1500);
    switch::driver(plan, &j.state)
}

#[test]
fn a_second_ensure_of_the_internal_switch_changes_nothing() {
    let (mut k, mut j, plan) = (FakeKernel::new(), FakeJournal::new(), internal_plan());
    let own = j.own();
    let driver = internal_driver(&mut k, &mut j, &plan);
    driver.ensure(&mut k, &plan, &own, &mut j).unwrap();
    let first = k.take_log();
    assert_eq!(
        first,
        [
            "create_bridge aksedgesw-int",
            "set_alias aksedgesw-int edgenet:0a1b2c",
            "set_up aksedgesw-int true",
            "add_address aksedgesw-int 192.168.0.1/24",
        ]
    );
    let bridge = k.link("aksedgesw-int").unwrap().unwrap();
    let mac = j.state.macs[&crate::names::switch_mac_key("aksedgesw-int")];
    assert_eq!(
        (bridge.mac, bridge.mtu, bridge.group),
        (Some(mac), 1500, own.group)
    );
    // The MAC is kept: a second prepare does not make another.
    let driver = internal_driver(&mut k, &mut j, &plan);
    assert_eq!(
        j.state.macs[&crate::names::switch_mac_key("aksedgesw-int")],
        mac
    );
    assert_eq!(
        j.state
            .object(ObjectKind::Bridge, "aksedgesw-int", None)
            .map(|o| o.status),
        Some(ObjectStatus::Created)
    );
    j.changes.clear();
    driver.ensure(&mut k, &plan, &own, &mut j).unwrap();
    assert_eq!(k.take_log(), Vec::<String>::new());
    assert_eq!(j.changes, Vec::<String>::new());
}

#[test]
fn ensure_repairs_only_what_drifted() {
    let (mut k, mut j, plan) = (FakeKernel::new(), FakeJournal::new(), internal_plan());
    let own = j.own();
    let driver = internal_driver(&mut k, &mut j, &plan);
    driver.ensure(&mut k, &plan, &own, &mut j).unwrap();
    k.take_log();
    k.set_mtu("aksedgesw-int", 1400).unwrap();
    k.add_address("aksedgesw-int", "10.9.9.9/24".parse().unwrap())
        .unwrap();
    k.take_log();
    driver.ensure(&mut k, &plan, &own, &mut j).unwrap();
    assert_eq!(
        k.take_log(),
        [
            "set_mtu aksedgesw-int 1500",
            "del_address aksedgesw-int 10.9.9.9/24",
        ]
    );
}

#[test]
fn an_unmarked_bridge_in_our_group_is_ours_only_with_our_record() {
    let (mut k, mut j, plan) = (FakeKernel::new(), FakeJournal::new(), internal_plan());
    let own = j.own();
    k.add_link("aksedgesw-int", Some("bridge"), None);
    k.links[0].group = own.group;
    let err = internal_driver(&mut k, &mut j, &plan)
        .ensure(&mut k, &plan, &own, &mut j)
        .unwrap_err();
    assert!(matches!(&err, DeployError::Foreign { .. }), "{err:?}");
    assert_eq!(k.take_log(), Vec::<String>::new(), "nothing was touched");
    // Recorded as made by a complete run (then replaced by someone): still not ours.
    j.state
        .record_object(crate::state::ObjectKind::Bridge, "aksedgesw-int", None)
        .status = crate::state::ObjectStatus::Created;
    let err = internal_driver(&mut k, &mut j, &plan)
        .ensure(&mut k, &plan, &own, &mut j)
        .unwrap_err();
    assert!(matches!(&err, DeployError::Foreign { .. }), "{err:?}");
    // Pending (a run killed between creating it and setting its alias): finished.
    j.state
        .record_object(crate::state::ObjectKind::Bridge, "aksedgesw-int", None)
        .status = crate::state::ObjectStatus::Pending;
    internal_driver(&mut k, &mut j, &plan)
        .ensure(&mut k, &plan, &own, &mut j)
        .unwrap();
    assert_eq!(k.links[0].alias.as_deref(), Some(own.alias.as_str()));
}

#[test]
fn a_foreign_bridge_is_refused_and_left_alone() {
    let (mut k, mut j, plan) = (FakeKernel::new(), FakeJournal::new(), internal_plan());
    let own = j.own();
    k.add_link("aksedgesw-int", Some("bridge"), None);
    let err = internal_driver(&mut k, &mut j, &plan)
        .ensure(&mut k, &plan, &own, &mut j)
        .unwrap_err();
    assert!(
        matches!(&err, DeployError::Foreign { name, hint, .. } if name == "aksedgesw-int" && hint.contains("did not create")),
        "{err:?}"
    );
    // Another deployment's bridge is named as such.
    k.links[0].alias = Some("edgenet:ffffff".into());
    let err = internal_driver(&mut k, &mut j, &plan)
        .ensure(&mut k, &plan, &own, &mut j)
        .unwrap_err();
    assert!(err.to_string().contains("aksedgesw-int"), "{err}");
    assert!(
        matches!(&err, DeployError::Foreign { hint, .. } if hint.contains("another edgenet deployment"))
    );
    assert_eq!(k.take_log(), Vec::<String>::new(), "nothing was touched");
    assert!(j.state.objects.is_empty(), "nothing was recorded");
}

#[test]
fn the_external_bridge_takes_the_adapters_mac_and_gives_the_adapter_back() {
    let (mut k, mut j, plan) = (FakeKernel::new(), FakeJournal::new(), external_plan());
    let own = j.own();
    let adapter_mac = k.add_link("up0", None, None).mac;
    let adoption = switch::adapter::adopt_adapter(&mut k, &mut j.state, &plan, &own).unwrap();
    let snap = adoption
        .snapshot
        .clone()
        .expect("the adapter is taken over");
    assert!(adoption.new_record && adoption.state_changed);
    assert_eq!(snap.mac, adapter_mac);
    let driver = switch::driver(&plan, &j.state);
    driver.ensure(&mut k, &plan, &own, &mut j).unwrap();
    let bridge = k.link("br-ext").unwrap().unwrap();
    assert_eq!(bridge.mac, adapter_mac, "not an all-zero MAC");
    // A new bridge comes up only with its port: up without one, it has no carrier, and the
    // GetLink that finds it for the port runs that link-state event under RTNL (an RCU grace
    // period every other deploy on the host waits for).
    let made = k.log.iter().position(|c| c == "set_master up0 br-ext");
    let up = k.log.iter().position(|c| c == "set_up br-ext true");
    assert!(made.is_some() && up.is_some() && made < up, "{:?}", k.log);
    assert!(bridge.up, "{:?}", k.log);
    assert_eq!(
        k.link("up0").unwrap().unwrap().master.as_deref(),
        Some("br-ext")
    );
    assert!(k.log.contains(&"move_link_config up0 br-ext".to_string()));
    k.take_log();
    driver.ensure(&mut k, &plan, &own, &mut j).unwrap();
    assert_eq!(
        k.take_log(),
        ["move_link_config up0 br-ext"],
        "a second ensure only looks for configuration left on the adapter"
    );

    // Remove (the same driver, picked from the records): the adapter gets the host's
    // configuration back while it is still a port, then leaves, then the bridge goes.
    let objects = j.state.objects.clone();
    let teardown = Teardown::of_state(&j.state, Path::new("/nonexistent"));
    let outcomes = teardown.undo_all(&mut k, objects);
    assert!(outcomes.iter().all(|(_, r)| r.is_ok()), "{outcomes:?}");
    assert_eq!(
        k.take_log(),
        [
            "move_link_config br-ext up0",
            "set_master up0 -",
            "delete_link br-ext",
        ]
    );
    assert!(k.link("up0").unwrap().is_some(), "the adapter stays");
}

#[test]
fn a_users_bridge_with_the_adapter_as_its_port_is_used_and_never_deleted() {
    let (mut k, mut j, plan) = (FakeKernel::new(), FakeJournal::new(), external_plan());
    let own = j.own();
    k.add_link("br-ext", Some("bridge"), None);
    k.add_link("up0", None, None).master = Some("br-ext".into());
    let adoption = switch::adapter::adopt_adapter(&mut k, &mut j.state, &plan, &own).unwrap();
    assert!(adoption.snapshot.is_none());
    switch::driver(&plan, &j.state)
        .ensure(&mut k, &plan, &own, &mut j)
        .unwrap();
    let objects = j.state.objects.clone();
    let outcomes =
        Teardown::of_state(&j.state, Path::new("/nonexistent")).undo_all(&mut k, objects);
    assert!(matches!(outcomes[..], [(_, Ok(false))]), "{outcomes:?}");
    assert_eq!(k.take_log(), Vec::<String>::new());
}

#[test]
fn a_failure_at_a_step_rolls_back_newest_first_in_removal_order() {
    let (mut k, mut j, plan) = (FakeKernel::new(), FakeJournal::new(), internal_plan());
    let own = j.own();
    // Nodes recorded and made before the switch fails at its address step (the order a
    // redeploy that adds the bridge back could take): the rollback still takes the nodes'
    // namespaces, then their veths, then the bridge.
    for (kind, name) in [(ObjectKind::Netns, "n1"), (ObjectKind::Netns, "n2")] {
        crate::journal::Journal::will_create(&mut j, kind, name, None).unwrap();
        k.netns_create(name).unwrap();
    }
    crate::journal::Journal::will_create(&mut j, ObjectKind::Veth, "v1", None).unwrap();
    k.create_veth(
        &edgenet_host::netlink::VethSpec {
            group: Some(own.group),
            ..edgenet_host::netlink::VethSpec::new("v1", "eth0")
        },
        Some("n1"),
    )
    .unwrap();
    k.take_log();
    j.fail_at = Some("switch-address");
    let driver = internal_driver(&mut k, &mut j, &plan);
    let err = driver.ensure(&mut k, &plan, &own, &mut j).unwrap_err();
    assert!(err.to_string().contains("switch-address"), "{err}");
    assert!(k.link("aksedgesw-int").unwrap().is_some());
    k.take_log();

    let undo = j.new_objects.clone();
    let outcomes = Teardown::of_state(&j.state, Path::new("/nonexistent")).undo_all(&mut k, undo);
    assert!(outcomes.iter().all(|(_, r)| r.is_ok()), "{outcomes:?}");
    assert_eq!(
        k.take_log(),
        [
            "netns_delete n2",
            "netns_delete n1",
            "delete_link v1",
            "delete_link aksedgesw-int",
        ]
    );
}

#[test]
fn remove_after_a_partial_deploy_takes_what_is_there_and_accepts_what_never_was() {
    let (mut k, mut j, plan) = (FakeKernel::new(), FakeJournal::new(), internal_plan());
    let own = j.own();
    // The deploy died right after recording the node's namespace, before making it.
    j.fail_at = Some("switch");
    let _ = internal_driver(&mut k, &mut j, &plan).ensure(&mut k, &plan, &own, &mut j);
    for (kind, name) in [(ObjectKind::Netns, "n1"), (ObjectKind::Veth, "v1")] {
        crate::journal::Journal::will_create(&mut j, kind, name, None).unwrap();
    }
    k.take_log();
    let objects = j.state.objects.clone();
    let outcomes =
        Teardown::of_state(&j.state, Path::new("/nonexistent")).undo_all(&mut k, objects);
    let results: Vec<(String, bool)> = outcomes
        .into_iter()
        .map(|(o, r)| (o.name, r.expect("no error")))
        .collect();
    assert_eq!(
        results,
        [
            ("n1".to_string(), false),
            ("v1".to_string(), false),
            ("aksedgesw-int".to_string(), true),
        ]
    );
    assert!(k.links.is_empty());
}

#[test]
fn remove_collects_every_error_and_never_stops_early() {
    let (mut k, j) = (FakeKernel::new(), FakeJournal::new());
    let own = j.own();
    let mut objects = Vec::new();
    for name in ["v1", "v2", "v3"] {
        k.add_link(name, Some("veth"), Some(&own.alias));
        objects.push(KernelObject::new(ObjectKind::Veth, name, None));
    }
    k.add_link("foreign0", Some("veth"), None);
    objects.push(KernelObject::new(ObjectKind::Veth, "foreign0", None));
    k.netns.insert("n1".into());
    objects.push(KernelObject::new(ObjectKind::Netns, "n1", None));
    k.fail = vec!["delete_link v1".into(), "netns_delete n1".into()];
    let outcomes =
        Teardown::of_state(&j.state, Path::new("/nonexistent")).undo_all(&mut k, objects);
    let summary: Vec<(String, &str)> = outcomes
        .iter()
        .map(|(o, r)| {
            let what = match r {
                Ok(true) => "removed",
                Ok(false) => "gone",
                Err(DeployError::Foreign { .. }) => "foreign",
                Err(_) => "error",
            };
            (o.name.clone(), what)
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("n1".to_string(), "error"),
            ("foreign0".to_string(), "foreign"),
            ("v3".to_string(), "removed"),
            ("v2".to_string(), "removed"),
            ("v1".to_string(), "error"),
        ]
    );
    assert!(k.link("foreign0").unwrap().is_some(), "not ours: left");
}

#[test]
fn the_adapter_record_without_a_snapshot_is_an_error_not_a_silent_success() {
    let (mut k, j) = (FakeKernel::new(), FakeJournal::new());
    let o = KernelObject::new(ObjectKind::Adapter, "up0", None);
    let err = Teardown::of_state(&j.state, Path::new("/nonexistent"))
        .undo(&mut k, &o)
        .unwrap_err();
    assert!(
        err.to_string().contains("no snapshot of adapter up0"),
        "{err}"
    );
    let _: Option<AdapterRecord> = None;
    let _: Option<AdapterSnapshot> = None;
}

#[test]
fn a_gone_adapter_is_a_missing_error() {
    let (mut k, j) = (FakeKernel::new(), FakeJournal::new());
    let snap = AdapterSnapshot {
        name: "up0".into(),
        mac: Some(MAC),
        mtu: 1500,
        up: true,
        disable_ipv6: None,
    };
    let err = switch::restore_adapter(&mut k, &snap, None, "br-ext", &j.own()).unwrap_err();
    assert!(
        matches!(
            err,
            DeployError::Missing {
                what: "adapter",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn remove_gives_the_adapter_back_from_the_bridge_its_record_names() {
    let (mut k, mut j, plan) = (FakeKernel::new(), FakeJournal::new(), external_plan());
    let own = j.own();
    k.add_link("up0", None, None);
    switch::prepare(&mut k, &mut j.state, &plan, &own, &[]).unwrap();
    switch::driver(&plan, &j.state)
        .ensure(&mut k, &plan, &own, &mut j)
        .unwrap();
    // A later plan (not deployed) names another switch: the records still say br-ext.
    let mut renamed = crate::firewall::tests::sample_plan();
    renamed.switch = SwitchPlan {
        name: "br-new".into(),
        ..external_plan()
    };
    j.state.pending_plan = Some(renamed);
    k.take_log();
    let objects = j.state.objects.clone();
    let outcomes =
        Teardown::of_state(&j.state, Path::new("/nonexistent")).undo_all(&mut k, objects);
    assert!(outcomes.iter().all(|(_, r)| r.is_ok()), "{outcomes:?}");
    assert_eq!(
        k.take_log(),
        [
            "move_link_config br-ext up0",
            "set_master up0 -",
            "delete_link br-ext",
        ]
    );
}

/// An external switch deployed on `k` for `j` (bridge br-ext, adapter up0).
fn deployed_external(k: &mut FakeKernel, j: &mut FakeJournal) {
    let plan = external_plan();
    let own = j.own();
    switch::prepare(k, &mut j.state, &plan, &own, &[]).unwrap();
    switch::driver(&plan, &j.state)
        .ensure(k, &plan, &own, j)
        .unwrap();
    k.take_log();
}

fn retire_for(
    k: &mut FakeKernel,
    j: &mut FakeJournal,
    plan: &SwitchPlan,
    earlier: &[SwitchPlan],
) -> (switch::retire::Stale, Vec<String>) {
    let own = j.own();
    let stale = switch::retire::find_stale(k, &j.state, plan, earlier, &own).unwrap();
    let changes = switch::retire::retire(k, &mut j.state, &stale, &own).unwrap();
    (stale, changes)
}

#[test]
fn a_switch_kind_change_gives_the_adapter_back_and_removes_the_old_bridge() {
    let (mut k, mut j) = (FakeKernel::new(), FakeJournal::new());
    k.add_link("up0", None, None);
    deployed_external(&mut k, &mut j);
    let (stale, changes) = retire_for(&mut k, &mut j, &internal_plan(), &[external_plan()]);
    assert_eq!(stale.describe().len(), 2, "{:?}", stale.describe());
    assert_eq!(
        k.take_log(),
        [
            "move_link_config br-ext up0",
            "set_master up0 -",
            "delete_link br-ext",
        ],
        "the adapter gets the host's configuration back while a port, then the bridge goes"
    );
    assert_eq!(changes, ["removed switch br-ext (gave adapter up0 back)"]);
    assert!(j.state.objects.is_empty(), "{:?}", j.state.objects);
    assert!(k.link("up0").unwrap().unwrap().master.is_none());
    // Nothing left: a second look finds nothing stale.
    let own = j.own();
    assert!(
        switch::retire::find_stale(&mut k, &j.state, &internal_plan(), &[], &own)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn after_a_crash_mid_take_over_the_records_lead_the_next_deploy_to_give_the_adapter_back() {
    let (mut k, mut j) = (FakeKernel::new(), FakeJournal::new());
    k.add_link("up0", None, None);
    let plan = external_plan();
    let own = j.own();
    switch::prepare(&mut k, &mut j.state, &plan, &own, &[]).unwrap();
    j.fail_at = Some("switch-adapter");
    let driver = switch::driver(&plan, &j.state);
    assert!(driver.ensure(&mut k, &plan, &own, &mut j).is_err());
    assert_eq!(
        k.link("up0").unwrap().unwrap().master.as_deref(),
        Some("br-ext"),
        "stopped with the adapter a port"
    );
    k.take_log();
    // The next deploy, of any plan (here: the internal switch, and no earlier plan recorded).
    let (_, changes) = retire_for(&mut k, &mut j, &internal_plan(), &[]);
    assert_eq!(
        k.take_log(),
        [
            "move_link_config br-ext up0",
            "set_master up0 -",
            "delete_link br-ext"
        ]
    );
    assert_eq!(changes, ["removed switch br-ext (gave adapter up0 back)"]);
}

#[test]
fn a_renamed_internal_switch_removes_the_old_bridge() {
    let (mut k, mut j, plan) = (FakeKernel::new(), FakeJournal::new(), internal_plan());
    let own = j.own();
    internal_driver(&mut k, &mut j, &plan)
        .ensure(&mut k, &plan, &own, &mut j)
        .unwrap();
    k.take_log();
    let renamed = SwitchPlan {
        name: "sw-x".into(),
        ..internal_plan()
    };
    let (stale, changes) = retire_for(&mut k, &mut j, &renamed, std::slice::from_ref(&plan));
    assert_eq!(stale.bridges.len(), 1);
    assert_eq!(k.take_log(), ["delete_link aksedgesw-int"]);
    assert_eq!(changes, ["removed switch aksedgesw-int"]);
    // The same switch again: nothing stale.
    let own = j.own();
    assert!(switch::retire::find_stale(
        &mut k,
        &j.state,
        &renamed,
        std::slice::from_ref(&renamed),
        &own
    )
    .unwrap()
    .is_empty());
}

#[test]
fn another_adapter_gives_the_old_one_back_and_replaces_its_switch() {
    let (mut k, mut j) = (FakeKernel::new(), FakeJournal::new());
    k.add_link("up0", None, None);
    k.add_link("up1", None, None);
    deployed_external(&mut k, &mut j);
    let plan = SwitchPlan {
        adapter: Some("up1".into()),
        ..external_plan()
    };
    let (_, changes) = retire_for(&mut k, &mut j, &plan, &[external_plan()]);
    assert_eq!(changes, ["removed switch br-ext (gave adapter up0 back)"]);
    assert!(k.link("br-ext").unwrap().is_none());
    assert!(k.link("up0").unwrap().unwrap().master.is_none());
    // The new switch then takes up1 over, with up1's MAC.
    let own = j.own();
    switch::prepare(&mut k, &mut j.state, &plan, &own, &[]).unwrap();
    switch::driver(&plan, &j.state)
        .ensure(&mut k, &plan, &own, &mut j)
        .unwrap();
    let up1 = k.link("up1").unwrap().unwrap();
    assert_eq!(up1.master.as_deref(), Some("br-ext"));
    assert_eq!(k.link("br-ext").unwrap().unwrap().mac, up1.mac);
}

#[test]
fn a_renamed_adapter_named_anew_by_the_plan_is_followed_not_released() {
    let (mut k, mut j) = (FakeKernel::new(), FakeJournal::new());
    k.add_link("up0", None, None);
    deployed_external(&mut k, &mut j);
    k.links.iter_mut().find(|l| l.name == "up0").unwrap().name = "enp7s0".into();
    let plan = SwitchPlan {
        adapter: Some("enp7s0".into()),
        ..external_plan()
    };
    let (stale, changes) = retire_for(&mut k, &mut j, &plan, &[external_plan()]);
    assert_eq!(stale.renamed, [("up0".to_string(), "enp7s0".to_string())]);
    assert!(stale.bridges.is_empty() && stale.adapters.is_empty());
    assert_eq!(
        k.take_log(),
        Vec::<String>::new(),
        "nothing changes on the host"
    );
    assert_eq!(changes.len(), 1, "{changes:?}");
    let record = AdapterRecord::in_state(&j.state, "enp7s0").expect("the record follows");
    assert_eq!(record.adapter.name, "enp7s0");
    assert!(AdapterRecord::in_state(&j.state, "up0").is_none());
    // The deploy then goes on with the bridge as it is.
    let own = j.own();
    switch::prepare(&mut k, &mut j.state, &plan, &own, &[]).unwrap();
    switch::driver(&plan, &j.state)
        .ensure(&mut k, &plan, &own, &mut j)
        .unwrap();
    assert_eq!(k.take_log(), ["move_link_config enp7s0 br-ext"]);
}

#[test]
fn a_bridge_mac_changed_by_hand_is_set_back_to_the_adapters() {
    let (mut k, mut j) = (FakeKernel::new(), FakeJournal::new());
    let mac = k.add_link("up0", None, None).mac;
    deployed_external(&mut k, &mut j);
    k.links.iter_mut().find(|l| l.name == "br-ext").unwrap().mac = Some(MAC);
    let (plan, own) = (external_plan(), j.own());
    switch::driver(&plan, &j.state)
        .ensure(&mut k, &plan, &own, &mut j)
        .unwrap();
    assert_eq!(k.link("br-ext").unwrap().unwrap().mac, mac);
    assert!(
        j.changes.iter().any(|c| c.starts_with("set MAC")),
        "{:?}",
        j.changes
    );
}

#[test]
fn the_recorded_configuration_goes_back_on_the_adapter_and_what_is_refused_is_said_so() {
    let (mut k, mut j) = (FakeKernel::new(), FakeJournal::new());
    k.add_link("up0", None, None);
    deployed_external(&mut k, &mut j);
    let mut record = AdapterRecord::in_state(&j.state, "up0").unwrap();
    record.moved = Some(edgenet_host::link_config::SavedLinkConfig {
        link: "br-ext".into(),
        index: 9,
        routes: vec!["00".into(), "01".into()],
        ..Default::default()
    });
    record.store(&mut j.state);
    // The bridge deleted by hand.
    k.links.retain(|l| l.name != "br-ext");
    k.links.iter_mut().find(|l| l.name == "up0").unwrap().master = None;
    k.fail.push("apply_saved_onto route 1".into());
    let o = j
        .state
        .object(ObjectKind::Adapter, "up0", None)
        .unwrap()
        .clone();
    let done = Teardown::of_state(&j.state, Path::new("/nonexistent"))
        .release_adapter(&mut k, &o)
        .unwrap();
    assert_eq!(
        done,
        [
            "put back route 0 on up0 (as recorded; it was on neither link)",
            "could not put back route 1: refused on up0",
        ]
    );
    assert!(k.log.contains(&"apply_saved_onto br-ext up0".to_string()));
}

#[test]
fn a_route_the_kernel_refuses_is_a_warning_not_a_change_and_said_once() {
    let (mut k, mut j, plan) = (FakeKernel::new(), FakeJournal::new(), external_plan());
    let own = j.own();
    k.add_link("up0", None, None);
    k.refuse_to_move = vec!["route 10.9.0.0/16 nhid 7: it uses a nexthop object".into()];
    switch::adapter::adopt_adapter(&mut k, &mut j.state, &plan, &own).unwrap();
    let driver = switch::driver(&plan, &j.state);
    driver.ensure(&mut k, &plan, &own, &mut j).unwrap();
    assert_eq!(j.warnings, k.refuse_to_move);
    j.changes.clear();
    driver.ensure(&mut k, &plan, &own, &mut j).unwrap();
    assert!(
        j.changes.is_empty(),
        "a redeploy meeting the same refused route changes nothing: {:?}",
        j.changes
    );
    // What deploy's journal does with it: shown the first time only.
    let warning = &k.refuse_to_move[0];
    assert!(j.state.warn_once(warning));
    assert!(!j.state.warn_once(warning));
}
