//! Smaller points of the black-box operator test B22 (finding 13) about reading configs.

use edgenet_core::config::load;
use edgenet_core::validate::{check, Context, Severity};
use serde_json::json;

/// UTF-16 BE without its BOM is named, as UTF-32 is (it is not read: Windows writes UTF-16 LE).
#[test]
fn utf16_big_endian_without_a_bom_is_named() {
    let text = r#"{"Edgenet": {"MachineName": "edge-01"}}"#;
    let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
    let err = load(&be).unwrap_err().to_string();
    assert!(
        err.contains("the file is UTF-16 BE text without a byte-order mark; save it as UTF-8"),
        "{err}"
    );
    // With its BOM it is read.
    let with_bom = [vec![0xfe, 0xff], be].concat();
    assert_eq!(
        load(&with_bom)
            .unwrap()
            .config
            .edgenet
            .machine_name
            .as_deref(),
        Some("edge-01")
    );
}

/// Windows' COMPUTERNAME is upper-case: `MachineName: "EDGE-01"` is read as `edge-01`, with a
/// notice naming both; a name lower case does not mend stays an error.
#[test]
fn an_upper_case_machine_name_is_read_in_lower_case_with_a_notice() {
    let config = json!({
        "DeploymentType": "ScalableCluster",
        "Init": {"ServiceIPRangeStart": "10.99.0.20", "ServiceIPRangeSize": 5},
        "Network": {"ControlPlaneEndpointIp": "10.99.0.10", "Ip4GatewayAddress": "10.99.0.1", "Ip4PrefixLength": 24, "DnsServers": ["10.99.0.1"]},
        "Edgenet": {"MachineName": "EDGE-00"},
        "Machines": [
            {"MachineName": "EDGE-01", "NetworkConnection": {"AdapterName": "up0"}, "LinuxNode": {"Ip4Address": "10.99.0.11", "ControlPlane": true}},
            {"MachineName": "Edge_02", "NetworkConnection": {"AdapterName": "up0"}, "LinuxNode": {"Ip4Address": "10.99.0.12"}},
        ],
    });
    let loaded = load(config.to_string().as_bytes()).unwrap();
    assert_eq!(
        loaded.config.machines[0].machine_name.as_deref(),
        Some("edge-01")
    );
    assert_eq!(
        loaded.config.edgenet.machine_name.as_deref(),
        Some("edge-00")
    );
    // `_` is not mended by lower case: kept as written, for the error.
    assert_eq!(
        loaded.config.machines[1].machine_name.as_deref(),
        Some("Edge_02")
    );
    let findings = check(&loaded, &Context::offline("test", "host"));
    let notice = findings
        .iter()
        .find(|f| f.path == "Machines[0].MachineName" && f.code.as_str() == "machine-name-case")
        .unwrap_or_else(|| panic!("{findings:#?}"));
    assert_eq!(notice.severity, Severity::Notice);
    assert_eq!(
        notice.message,
        "Machines[0].MachineName is \"EDGE-01\"; read as \"edge-01\" (node names are lower-case: edge-01-ledge)"
    );
    assert!(findings
        .iter()
        .any(|f| f.path == "Edgenet.MachineName" && f.code.as_str() == "machine-name-case"));
    let errors: Vec<_> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].path, "Machines[1].MachineName");
    assert_eq!(errors[0].code.as_str(), "invalid-name");
}
