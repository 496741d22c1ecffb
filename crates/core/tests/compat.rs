//! Reading AKS Edge Essentials files the way the product reads them: encodings, key case,
//! duplicate keys, older schema forms — each finding at a path the file has.

mod common;

use common::*;
use edgenet_core::config::{load, DeploymentType, Distribution, LoadError};
use edgenet_core::validate::{check, Context, Severity};
use serde_json::{json, Value};

fn findings_of(text: &[u8]) -> Vec<edgenet_core::validate::Finding> {
    let loaded = load(text).unwrap();
    check(&loaded, &Context::offline("test", "edge01"))
}

#[test]
fn utf16_with_and_without_bom_and_big_endian() {
    let text = fixture_text("aksee-single-machine.json");
    let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
    let expected = load(text.as_bytes()).unwrap().config;
    for (name, bytes) in [
        ("LE with BOM", [vec![0xff, 0xfe], le.clone()].concat()),
        ("BE with BOM", [vec![0xfe, 0xff], be].concat()),
        ("LE without BOM", le),
        (
            "UTF-8 with BOM",
            [vec![0xef, 0xbb, 0xbf], text.clone().into_bytes()].concat(),
        ),
    ] {
        let loaded = load(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(loaded.config, expected, "{name}");
    }
    // A lone surrogate is not text.
    let bad = [0xff, 0xfe, b'{', 0, 0x00, 0xd8, b'}', 0];
    assert!(matches!(load(&bad), Err(LoadError::Utf16 { .. })));
    assert!(load(&bad).unwrap_err().to_string().contains("UTF-16"));
}

/// Windows PowerShell 5.1's `Set-Content` writes the ANSI code page: read as Windows-1252,
/// with a notice; a byte Windows-1252 leaves undefined is refused.
#[test]
fn windows_1252_files_are_read_with_a_notice() {
    let text = b"{\"DeploymentType\": \"SingleMachineCluster\", \"Edgenet\": {\"MachineName\": \"caf\xe9\"}}";
    let loaded = load(text).unwrap();
    assert_eq!(
        loaded.config.edgenet.machine_name.as_deref(),
        Some("caf\u{e9}")
    );
    assert!(loaded
        .findings
        .iter()
        .any(|f| f.message.contains("Windows-1252")));
    assert!(matches!(
        load(b"{\"a\": \"\x81\"}"),
        Err(LoadError::Encoding { offset: 7 })
    ));
}

/// PowerShell 7's ConvertFrom-Json accepts comments and trailing commas (a Microsoft docs page
/// shows one): read, with a notice; positions of later syntax errors stay right.
#[test]
fn trailing_commas_and_comments_are_read_with_a_notice() {
    let text = "{\n  // single machine\n  \"DeploymentType\": \"SingleMachineCluster\", /* x */\n  \"Network\": {\"DnsServers\": [\"1.1.1.1\",],},\n  \"Edgenet\": {\"MachineName\": \"a//b,}\"}\n}";
    let loaded = load(text.as_bytes()).unwrap();
    assert_eq!(
        loaded.config.edgenet.machine_name.as_deref(),
        Some("a//b,}")
    );
    assert_eq!(loaded.config.network.dns_servers.as_ref().unwrap().len(), 1);
    let notes: Vec<&str> = loaded.findings.iter().map(|f| f.message.as_str()).collect();
    assert!(
        notes.iter().any(|m| m.contains("trailing commas")),
        "{notes:?}"
    );
    assert!(notes.iter().any(|m| m.contains("comments")), "{notes:?}");
    // Each with its own stable code (B21): a notice, the file is read; not an older form
    // (`legacy-field`).
    for f in &loaded.findings {
        assert_eq!(f.code.as_str(), "json-extension", "{f:?}");
        assert_eq!(f.severity, Severity::Notice, "{f:?}");
        assert_eq!(f.rule, 1, "{f:?}");
        assert!(f.message.contains("PowerShell 5.1"), "{f:?}");
    }
    assert_eq!(loaded.findings.len(), 2, "{:?}", loaded.findings);
    // Strict JSON: none.
    let strict = load(br#"{"DeploymentType": "SingleMachineCluster"}"#).unwrap();
    assert!(
        strict
            .findings
            .iter()
            .all(|f| f.code.as_str() != "json-extension"),
        "{:?}",
        strict.findings
    );
    let at = |text: &[u8]| match load(text) {
        Err(LoadError::Syntax { line, column, .. }) => (line, column),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        at(b"{\n // c\n \"a\": [1,], \"b\": tru\n}"),
        at(b"{\n     \n \"a\": [1 ], \"b\": tru\n}")
    );
}

#[test]
fn too_large_names_the_size_it_was_given() {
    let big = vec![b' '; edgenet_core::config::MAX_CONFIG_BYTES + 5];
    let e = load(&big).unwrap_err();
    assert!(
        e.to_string().contains(&format!("is {} bytes", big.len())),
        "{e}"
    );
}

#[test]
fn a_wrong_case_key_is_read_with_a_notice_never_silently() {
    let mut v = fixture("aksee-scalable-first.json");
    let t = v.as_object_mut().unwrap().remove("DeploymentType").unwrap();
    v["deploymenttype"] = t;
    let text = v.to_string();
    let loaded = load(text.as_bytes()).unwrap();
    assert_eq!(
        loaded.config.deployment_type,
        DeploymentType::ScalableCluster
    );
    let f = assert_has(
        &findings_of(text.as_bytes()),
        "key-case",
        "deploymenttype",
        Severity::Notice,
    );
    assert!(f.message.contains("DeploymentType"), "{f:?}");
}

#[test]
fn findings_name_the_path_as_the_file_spells_it() {
    let mut v = fixture("aksee-scalable-first.json");
    let net = v.as_object_mut().unwrap().remove("Network").unwrap();
    v["network"] = net;
    v["network"]["ControlPlaneEndpointIp"] = json!("192.168.1.171");
    let f = findings_of(v.to_string().as_bytes());
    let dup = f
        .iter()
        .find(|f| f.code.as_str() == "address-duplicate")
        .unwrap();
    assert!(
        dup.message.contains("network.ControlPlaneEndpointIp"),
        "{dup:?}"
    );
    assert!(
        !dup.message.contains("Network.ControlPlaneEndpointIp"),
        "{dup:?}"
    );
}

#[test]
fn exact_and_case_duplicates_are_errors() {
    let exact =
        br#"{"DeploymentType": "SingleMachineCluster", "DeploymentType": "ScalableCluster"}"#;
    assert_has(
        &findings_of(exact),
        "duplicate-key",
        "DeploymentType",
        Severity::Error,
    );
    let case = br#"{"Network": {"DnsServers": ["1.1.1.1"], "dnsservers": ["9.9.9.9"]}}"#;
    let f = assert_has(
        &findings_of(case),
        "duplicate-key",
        "Network.dnsservers",
        Severity::Error,
    );
    assert!(f.message.contains("DnsServers"));
    // In an array element too.
    let nested = br#"{"Machines": [{"LinuxNode": {}, "LINUXNODE": {}}]}"#;
    assert_has(
        &findings_of(nested),
        "duplicate-key",
        "Machines[0].LINUXNODE",
        Severity::Error,
    );
}

#[test]
fn the_plugin_chooses_the_distribution() {
    for (plugin, distro) in [
        ("calico", Distribution::K8s),
        ("flannel", Distribution::K3s),
    ] {
        let v = set(
            fixture("aksee-single-machine.json"),
            "Network/NetworkPlugin",
            json!(plugin),
        );
        let loaded = load(v.to_string().as_bytes()).unwrap();
        assert_eq!(loaded.config.distribution(), distro, "{plugin}");
        assert_clean(&run(&v));
    }
    let none = remove(
        fixture("aksee-single-machine.json"),
        "Network/NetworkPlugin",
    );
    assert_eq!(
        load(none.to_string().as_bytes())
            .unwrap()
            .config
            .distribution(),
        Distribution::K3s
    );
}

#[test]
fn service_range_in_two_places_and_by_its_end() {
    let base = fixture("aksee-scalable-first.json");
    // The same value in both places: a notice on the older one.
    let same = set(base.clone(), "Network/ServiceIPRangeSize", json!(10));
    assert_clean(&run(&same));
    assert_has(
        &run(&same),
        "legacy-field",
        "Network.ServiceIPRangeSize",
        Severity::Notice,
    );
    // Different: an error naming both paths.
    let differ = set(base.clone(), "Network/ServiceIPRangeSize", json!(12));
    let f = assert_has(
        &run(&differ),
        "conflicting-fields",
        "Network.ServiceIPRangeSize",
        Severity::Error,
    );
    assert!(f.message.contains("Init.ServiceIPRangeSize"), "{f:?}");
    // The end alone gives the size (inclusive).
    let end = set(
        remove(base.clone(), "Init/ServiceIPRangeSize"),
        "Init/ServiceIPRangeEnd",
        json!("192.168.1.165"),
    );
    let loaded = load(end.to_string().as_bytes()).unwrap();
    assert_eq!(loaded.config.init.service_ip_range_size, Some(15));
    assert_clean(&run(&end));
    // An end before the start, and an end without a start.
    let before = set(
        end.clone(),
        "Init/ServiceIPRangeEnd",
        json!("192.168.1.140"),
    );
    assert_has(
        &run(&before),
        "service-range-size",
        "Init.ServiceIPRangeEnd",
        Severity::Error,
    );
    let alone = set(
        remove(
            fixture("aksee-single-machine.json"),
            "Init/ServiceIPRangeStart",
        ),
        "Init/ServiceIPRangeEnd",
        json!("192.168.0.20"),
    );
    assert_has(
        &run(&alone),
        "ignored-field",
        "Init.ServiceIPRangeEnd",
        Severity::Warning,
    );
    // A current-schema rule about the range names where the file wrote it.
    let moved = set(
        remove(base, "Init/ServiceIPRangeStart"),
        "Network/ServiceIPRangeStart",
        json!("10.9.9.9"),
    );
    assert_has(
        &run(&moved),
        "address-outside-subnet",
        "Network.ServiceIPRangeStart",
        Severity::Error,
    );
}

#[test]
fn preview_fields_that_contradict_current_ones_are_errors() {
    let mut v: Value = fixture("aksee-single-machine.json");
    v["DeployOptions"] = json!({"SingleMachineCluster": false, "NetworkPlugin": "calico"});
    let f = run(&v);
    assert_has(
        &f,
        "conflicting-fields",
        "DeployOptions.SingleMachineCluster",
        Severity::Error,
    );
    assert_has(
        &f,
        "conflicting-fields",
        "DeployOptions.NetworkPlugin",
        Severity::Error,
    );
}

#[test]
fn network_fields_not_applied_are_warned_others_stay_silent() {
    let v = set(
        fixture("aksee-scalable-first.json"),
        "Machines/0/LinuxNode/SecondaryNetworks",
        json!([{"VMSwitchName": "ot", "Ip4Address": "10.1.1.5", "Ip4GatewayAddress": "10.1.1.1", "Ip4PrefixLength": 24}]),
    );
    let f = run(&v);
    let w = assert_has(
        &f,
        "not-applied",
        "Machines[0].LinuxNode.SecondaryNetworks",
        Severity::Warning,
    );
    assert!(w.message.contains("not applied by edgenet yet"));
    // An empty list, as New-AksEdgeConfig may write it, says nothing; nor do the VM sizes.
    let empty = set(
        fixture("aksee-scalable-first.json"),
        "Machines/0/LinuxNode/SecondaryNetworks",
        json!([]),
    );
    assert!(
        run(&empty).iter().all(|f| f.severity != Severity::Warning),
        "{:?}",
        run(&empty)
    );
}

fn lower_keys(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), lower_keys(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(lower_keys).collect()),
        other => other.clone(),
    }
}

/// Every valid file of the corpus reads the same with all its keys in lower case (and the
/// canonical spelling of a lower-cased file gives the file back).
#[test]
fn the_corpus_reads_the_same_in_any_key_case() {
    let dir = format!("{}/../../tests/fixtures/corpus", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("invalid-") || !name.ends_with(".json") {
            continue;
        }
        let original = load(&std::fs::read(&path).unwrap()).unwrap();
        let lowered = lower_keys(&original.source);
        let loaded = load(lowered.to_string().as_bytes()).unwrap();
        let strip = |mut c: edgenet_core::config::Config| {
            c.source_paths.clear();
            c.invalid_paths.clear();
            if let Some(v) = &mut c.network.legacy_vswitch {
                v.path.clear();
            }
            c
        };
        assert_eq!(
            strip(loaded.config.clone()),
            strip(original.config.clone()),
            "{name}"
        );
        let f = check(&loaded, &Context::offline("test", "edge01"));
        // The same errors as written (a Windows adapter name is one offline, B23 F2).
        let errors = |f: &[edgenet_core::validate::Finding]| -> Vec<&'static str> {
            f.iter()
                .filter(|f| f.severity == Severity::Error)
                .map(|f| f.code.as_str())
                .collect()
        };
        let as_written = check(&original, &Context::offline("test", "edge01"));
        assert_eq!(errors(&f), errors(&as_written), "{name}: {f:#?}");
        assert!(
            errors(&f).iter().all(|c| *c == "invalid-name"),
            "{name}: {f:#?}"
        );
        assert!(
            f.iter().any(|f| f.code.as_str() == "key-case"),
            "{name}: the spelling is noticed"
        );
        let back = edgenet_core::config::with_canonical_keys(&lowered);
        let reread = load(back.to_string().as_bytes()).unwrap();
        assert_eq!(strip(reread.config), strip(original.config), "{name}");
    }
}

/// ConvertTo-Json's default -Depth 2 writes deeper objects as "@{…}" text: the hint says so.
#[test]
fn a_powershell_object_written_as_text_points_at_convertto_json_depth() {
    let text = br#"{"DeploymentType": "ScalableCluster", "Network": {"Proxy": "@{Http=http://p:3128; Https=; No=}"}}"#;
    let loaded = load(text).unwrap();
    let f = loaded
        .findings
        .iter()
        .find(|f| f.path == "Network.Proxy")
        .expect("a finding at Network.Proxy");
    assert!(
        f.hint
            .as_deref()
            .unwrap_or("")
            .contains("ConvertTo-Json -Depth"),
        "{f:?}"
    );
}

/// A single machine's `Network.VSwitch.AdapterName` is ignored once, at the path written, not
/// mapped to Machines[0].NetworkConnection.AdapterName and then ignored there.
#[test]
fn a_single_machine_vswitch_adapter_is_ignored_where_written() {
    let text = br#"{"DeployOptions": {"SingleMachineCluster": true}, "LinuxVm": {"CpuCount": 2},
        "Network": {"VSwitch": {"Name": "", "Type": "Internal", "AdapterName": "Ethernet"}}}"#;
    let loaded = load(text).unwrap();
    let findings = edgenet_core::validate::check(
        &loaded,
        &edgenet_core::validate::Context::offline("test", "edge01"),
    );
    let at: Vec<(&str, &str)> = findings
        .iter()
        .filter(|f| f.path.contains("AdapterName"))
        .map(|f| (f.code.as_str(), f.path.as_str()))
        .collect();
    assert_eq!(
        at,
        [("ignored-field", "Network.VSwitch.AdapterName")],
        "{findings:#?}"
    );
    assert!(loaded.config.machines[0].adapter_name.is_none());
}
