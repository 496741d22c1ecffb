//! Wording an operator tester asked for (B21 N9): DnsServers written with Windows' `;`, parse
//! errors that name a UTF-32 file or a typographic quote, and one `key-case` notice for a
//! config written in another case throughout.

mod common;

use common::*;
use edgenet_core::config::{load, LoadError};
use edgenet_core::validate::Severity;
use serde_json::{json, Value};

fn single(dns: Value) -> Value {
    json!({
        "DeploymentType": "SingleMachineCluster",
        "Network": {"DnsServers": dns},
        "Machines": [{"LinuxNode": {}}]
    })
}

#[test]
fn dns_servers_separated_by_semicolons_get_the_windows_separator_hint() {
    for (dns, path) in [
        (json!("198.18.0.1;192.0.2.53"), "Network.DnsServers"),
        (json!(["198.18.0.1; 192.0.2.53"]), "Network.DnsServers[0]"),
    ] {
        let f = assert_has(&run(&single(dns)), "invalid-ipv4", path, Severity::Error);
        assert!(f.message.contains("';' as Windows writes"), "{f:#?}");
        assert_eq!(
            f.hint.as_deref(),
            Some("write a JSON array: [\"198.18.0.1\", \"192.0.2.53\"]")
        );
    }
    // Not a list of addresses: the generic finding.
    let f = assert_has(
        &run(&single(json!("198.18.0.1;dns.example"))),
        "invalid-ipv4",
        "Network.DnsServers",
        Severity::Error,
    );
    assert!(!f.message.contains("Windows"), "{f:#?}");
}

fn syntax(bytes: &[u8]) -> String {
    match load(bytes) {
        Err(e @ LoadError::Syntax { .. }) => e.to_string(),
        other => panic!("not a syntax error: {other:?}"),
    }
}

#[test]
fn a_utf32_file_and_a_typographic_quote_are_named_at_the_position() {
    let text = r#"{"DeploymentType": "SingleMachineCluster"}"#;
    let le: Vec<u8> = [0xff, 0xfe, 0, 0]
        .into_iter()
        .chain(text.chars().flat_map(|c| (c as u32).to_le_bytes()))
        .collect();
    let be: Vec<u8> = text
        .chars()
        .flat_map(|c| (c as u32).to_be_bytes())
        .collect();
    assert!(syntax(&le).contains("UTF-32 LE"), "{}", syntax(&le));
    assert!(syntax(&be).contains("UTF-32 BE"), "{}", syntax(&be));

    let quoted = "{\n  \"SchemaVersion\": \"1.14\",\n  \"DeploymentType\": \u{201C}ScalableCluster\u{201D}\n}\n";
    let e = syntax(quoted.as_bytes());
    assert!(e.contains("U+201C") && e.contains("line 3"), "{e}");
    // A plain syntax error names nothing of the kind.
    let e = syntax(b"{\"DeploymentType\": }");
    assert!(!e.contains("U+") && !e.contains("UTF-32"), "{e}");
}

/// Every key of `v` in lower case.
fn lower(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.to_lowercase(), lower(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(lower).collect()),
        other => other.clone(),
    }
}

#[test]
fn a_config_in_lower_case_gets_one_key_case_notice() {
    let cfg = lower(&fixture("aksee-scalable-first.json"));
    let f = run(&cfg);
    let case: Vec<_> = f.iter().filter(|f| f.code.as_str() == "key-case").collect();
    assert_eq!(case.len(), 1, "{case:#?}");
    assert!(case[0].message.contains(" more"), "{:#?}", case[0]);
    // A few keys: one notice each, at its path.
    let few = json!({
        "deploymenttype": "SingleMachineCluster",
        "machines": [{"LinuxNode": {}}]
    });
    let f = run(&few);
    assert!(find(&f, "key-case", "deploymenttype").is_some(), "{f:#?}");
    assert!(find(&f, "key-case", "machines").is_some(), "{f:#?}");
}
