//! Any bytes through load → check → plan: findings or a load error, never a panic.
#![no_main]

use edgenet_core::config::load;
use edgenet_core::host_facts::{HostAddress, HostFacts, HostLink};
use edgenet_core::plan;
use edgenet_core::validate::{check, Context, Severity};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(loaded) = load(data) else { return };
    let facts = HostFacts {
        hostname: "fuzz".into(),
        links: vec![HostLink {
            name: "eth0".into(),
            index: 2,
            mtu: 1500,
            up: true,
            lower_up: true,
            mac: Some("52:54:00:00:00:01".into()),
            kind: None,
            master: None,
            wireless: false,
        }],
        addresses: vec![HostAddress { link: "eth0".into(), address: "192.168.1.5/24".parse().unwrap() }],
        ..HostFacts::default()
    };
    for ctx in [Context::live(&facts), Context::offline("fuzz", "fuzz")] {
        for machine in [None, Some(0), Some(1)] {
            let mut ctx = ctx.clone();
            ctx.machine = machine;
            let findings = check(&loaded, &ctx);
            let plan = plan::build(&loaded.config, &ctx);
            // A config without errors for an existing machine always plans.
            if !findings.iter().any(|f| f.severity == Severity::Error) && machine.is_none_or(|m| m < loaded.config.machines.len()) && (machine.is_some() || loaded.config.machines.len() == 1) {
                assert!(plan.is_ok(), "{plan:?}");
            }
        }
    }
});
