//! A machine named after a host name too long for a machine name (O24): shortened with a
//! notice that names the host name, what it became and how to choose another.

use edgenet_core::config::load;
use edgenet_core::validate::{check, Context, Severity};

const LONG: &str = "Build-Agent-0123456789-0123456789-0123456789-abcdefghijklmn.corp.example";

fn shortened(config: &str, ctx: &Context<'_>) -> Vec<edgenet_core::validate::Finding> {
    check(&load(config.as_bytes()).unwrap(), ctx)
        .into_iter()
        .filter(|f| f.code.as_str() == "machine-name-shortened")
        .collect()
}

#[test]
fn a_long_host_name_is_shortened_with_a_notice() {
    let single = r#"{"Machines": [{"LinuxNode": {}}]}"#;
    let found = shortened(single, &Context::offline("test", LONG));
    assert_eq!(found.len(), 1, "{found:?}");
    let f = &found[0];
    assert_eq!(f.severity, Severity::Notice);
    assert_eq!(f.path, "Edgenet.MachineName");
    let short = "build-agent-0123456789-0123456789-0123456789-abcdefghijkl";
    assert_eq!(short.len(), 57);
    assert!(f.message.contains(LONG), "{}", f.message);
    assert!(f.message.contains(&format!("{short:?}")), "{}", f.message);
    let hint = f.hint.as_deref().unwrap();
    assert!(
        hint.contains("Edgenet.MachineName") && hint.contains("--machine-name"),
        "{hint}"
    );
    let plan = edgenet_core::plan::build(
        &load(single.as_bytes()).unwrap().config,
        &Context::offline("test", LONG),
    )
    .unwrap();
    assert_eq!(
        plan.machine.name, short,
        "the notice says what the plan does"
    );

    // A name the config or the command line gives, or a host name that fits: nothing to say.
    let named = r#"{"Machines": [{"LinuxNode": {}}], "Edgenet": {"MachineName": "edge-01"}}"#;
    assert!(shortened(named, &Context::offline("test", LONG)).is_empty());
    let mut given = Context::offline("test", LONG);
    given.machine_name = Some("edge-02".into());
    assert!(shortened(single, &given).is_empty());
    assert!(shortened(single, &Context::offline("test", "edge01.corp.example")).is_empty());
    let exactly = "a".repeat(57);
    assert!(shortened(single, &Context::offline("test", &exactly)).is_empty());
}
