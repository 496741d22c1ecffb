//! `"Machines": []`: a config that lists no machine. AKS Edge Essentials reads the machine's
//! adapter (`Machines[].NetworkConnection.AdapterName`, mandatory for a ScalableCluster) and
//! its nodes from this list, so an empty one is refused for both deployment types, naming the
//! path, the value and the fix; leaving `Machines` out of a single-machine config stays valid
//! (one machine with a Linux node is the default).

mod common;

use common::*;
use edgenet_core::validate::{Finding, Severity};
use serde_json::json;

fn errors(findings: &[Finding]) -> Vec<&Finding> {
    findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect()
}

#[test]
fn a_scalable_cluster_without_machines_is_refused_naming_the_empty_list() {
    let good = fixture("aksee-scalable-first.json");
    assert!(errors(&run(&good)).is_empty(), "{:#?}", run(&good));
    let findings = run(&set(good, "Machines", json!([])));
    let f = assert_has(&findings, "machine-count", "Machines", Severity::Error);
    assert!(f.message.contains("Machines is []"), "{}", f.message);
    assert!(f.message.contains("ScalableCluster"), "{}", f.message);
    let hint = f.hint.clone().unwrap_or_default();
    assert!(hint.contains("AdapterName"), "{hint}");
    // One error says it (not also "is required", which reads as if the key were absent).
    assert_eq!(errors(&findings).len(), 1, "{findings:#?}");
}

#[test]
fn a_single_machine_config_with_an_empty_list_is_refused_and_without_the_key_accepted() {
    let good = fixture("aksee-single-machine.json");
    assert!(errors(&run(&good)).is_empty(), "{:#?}", run(&good));
    let findings = run(&set(good.clone(), "Machines", json!([])));
    let f = assert_has(&findings, "machine-count", "Machines", Severity::Error);
    assert!(f.message.contains("Machines is []"), "{}", f.message);
    assert!(
        f.hint.as_deref().unwrap_or("").contains("remove Machines"),
        "{f:?}"
    );
    assert_eq!(errors(&findings).len(), 1, "{findings:#?}");
    let omitted = run(&remove(good, "Machines"));
    assert!(errors(&omitted).is_empty(), "{omitted:#?}");
}
