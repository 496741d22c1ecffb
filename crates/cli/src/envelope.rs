//! The one JSON shape of every report (`--output json`), documented in docs/json-output.md:
//!
//! ```json
//! {"schema": "edgenet.check/v1", "ok": true, "exit": 0, "error": null, …the report's keys…}
//! ```
//!
//! Every key of a schema is always present (`null` when there is nothing to say, e.g. when the
//! command failed before it had a report), and `error` has the same shape everywhere:
//! `{"code", "message", "hint", "exit"}`. A command adds a schema here and calls [`print()`] with
//! its report, or [`print_error`] when it failed.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::exit::{CliError, Exit};
use crate::output::outln;

/// A report's name and version, and the keys it always has besides the envelope's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schema {
    pub name: &'static str,
    pub keys: &'static [&'static str],
}

pub const CHECK: Schema = Schema {
    name: "edgenet.check/v1",
    keys: &["source", "findings", "summary"],
};

/// The plan's keys (docs/plan-schema.md) at the top level, as before the envelope.
pub const PLAN: Schema = Schema {
    name: "edgenet.plan/v1",
    keys: &[
        "deployment_type",
        "distribution",
        "node_runtime",
        "machine",
        "joining",
        "switch",
        "nodes",
        "control_plane_endpoint",
        "service_range",
        "kubernetes",
        "port_forwards",
    ],
};

pub const DEPLOY: Schema = Schema {
    name: "edgenet.deploy/v1",
    keys: &[
        "source",
        "deployment_id",
        "state_dir",
        "changes",
        "plan",
        "rolled_back",
        "rollback_errors",
        "warnings",
    ],
};

pub const REMOVE: Schema = Schema {
    name: "edgenet.remove/v1",
    keys: &[
        "found",
        "deployment_id",
        "removed",
        "already_gone",
        "restored",
        "left",
        "errors",
        "forced",
        "vm_notes",
        "leftover_files",
        "orphan",
    ],
};

pub const STATUS: Schema = Schema {
    name: "edgenet.status/v1",
    keys: &[
        "deployed",
        "state_dir",
        "deployment_id",
        "phase",
        "plan",
        "switch",
        "firewall_table",
        "firewall_present",
        "firewall_wanted",
        "firewall_foreign",
        "bridge_table",
        "bridge_table_present",
        "bridge_table_foreign",
        "ip_forward",
        "nodes",
        "generated_macs",
        "drift",
        "notices",
    ],
};

pub const NODE_ADDR: Schema = Schema {
    name: "edgenet.node-addr/v1",
    keys: &["node", "netns", "ip", "addresses", "mac"],
};

pub const LAB_STATUS: Schema = Schema {
    name: "edgenet.lab-status/v1",
    keys: &["lab", "up", "cells", "notes", "doctor"],
};

pub const RENDER: Schema = Schema {
    name: edgenet_render::RENDER_SCHEMA,
    // `--out DIR` fills out/distribution/files/notices; one TARGET fills node/target/contents.
    keys: &[
        "machine",
        "out",
        "distribution",
        "files",
        "notices",
        "removed",
        "node",
        "target",
        "contents",
    ],
};

pub const DOCTOR: Schema = Schema {
    name: edgenet_doctor::DOCTOR_SCHEMA,
    keys: &["machine", "checks", "pass", "warn", "fail"],
};

pub const LAB_DOWN: Schema = Schema {
    name: "edgenet.lab-down/v1",
    keys: &["lab", "removed", "remove_runs"],
};

/// Commands that report nothing of their own (`config new`, `scale-config`, `node exec`,
/// completions) still answer a failure with the envelope.
/// `config new` and `scale-config`: the config written, and the file it went to (`null`: only
/// in this report).
pub const CONFIG: Schema = Schema {
    name: "edgenet.config/v1",
    keys: &["file", "config"],
};

pub const ERROR: Schema = Schema {
    name: "edgenet.error/v1",
    keys: &[],
};

/// The error object every report uses.
pub fn error_object(code: &str, message: &str, hint: Option<&str>, exit: Exit) -> Value {
    serde_json::json!({"code": code, "message": message, "hint": hint, "exit": exit as u8})
}

/// This run's state directory, once the command line is read (see [`know_state_dir`]).
static STATE_DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Says which state directory this run works on (`--state-dir`, `EDGENET_STATE_DIR` or the
/// default), so that a report with a `state_dir` key names it even when the run was refused
/// before it read the state (an unsafe directory, a bad argument, a lock, an interruption).
/// Not called — the key stays `null` — when the path is empty or names something that is not a
/// directory (then there is no state directory to name).
pub fn know_state_dir(path: &std::path::Path) {
    if path.as_os_str().is_empty() || std::fs::metadata(path).is_ok_and(|m| !m.is_dir()) {
        return;
    }
    let _ = STATE_DIR.set(path.to_path_buf());
}

/// The envelope around `report` (an object whose keys are the schema's; missing ones become
/// `null`, unknown ones are a bug caught by the tests). A `state_dir` the report leaves `null`
/// is this run's state directory when it is known ([`know_state_dir`]).
pub fn wrap(schema: &Schema, exit: Exit, error: Option<Value>, report: &impl Serialize) -> Value {
    let report = serde_json::to_value(report).expect("reports serialize");
    let mut fields = match report {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        other => panic!("a {} report must be an object, not {other}", schema.name),
    };
    debug_assert!(
        fields
            .keys()
            .all(|k| schema.keys.contains(&k.as_str()) || k == "schema"),
        "{}: keys {:?} outside the schema {:?}",
        schema.name,
        fields.keys().collect::<Vec<_>>(),
        schema.keys
    );
    let mut out = Map::new();
    out.insert("schema".into(), Value::from(schema.name));
    out.insert("ok".into(), Value::from(exit == Exit::Ok));
    out.insert("exit".into(), Value::from(exit as u8));
    out.insert("error".into(), error.unwrap_or(Value::Null));
    for key in schema.keys {
        let mut value = fields.remove(*key).unwrap_or(Value::Null);
        if *key == "state_dir" && value.is_null() {
            if let Some(dir) = STATE_DIR.get() {
                value = Value::from(dir.to_string_lossy().into_owned());
            }
        }
        out.insert((*key).to_string(), value);
    }
    Value::Object(out)
}

/// Prints a successful `report` in its envelope on stdout.
pub fn print(schema: &Schema, report: &impl Serialize) {
    emit(&wrap(schema, Exit::Ok, None, report));
}

/// Prints `report` with the outcome `result`: `Ok(())`, or the error that made it fail (a report
/// that found problems is a failure too, so `ok: false` always comes with an `error`).
pub fn print_result(schema: &Schema, result: Result<(), CliError>, report: &impl Serialize) {
    match result {
        Ok(()) => print(schema, report),
        Err(e) => print_error(schema, &e, report),
    }
}

/// Prints a failure in the envelope of `schema`, with what the command had (`partial`, an
/// object or `null`) in the report's keys.
pub fn print_error(schema: &Schema, err: &CliError, partial: &impl Serialize) {
    let error = error_object(err.code, &err.message, err.hint.as_deref(), err.exit);
    emit(&wrap(schema, err.exit, Some(error), partial));
}

/// The envelope of an error that could not go to stdout (it is what failed: see
/// `output::stdout_failed`), on stderr.
pub fn print_error_to_stderr(schema: &Schema, err: &CliError) {
    let error = error_object(err.code, &err.message, err.hint.as_deref(), err.exit);
    let value = wrap(schema, err.exit, Some(error), &Value::Null);
    crate::output::errln!(
        "{}",
        edgenet_core::redact::redact_credentials(
            &serde_json::to_string_pretty(&value).expect("reports serialize")
        )
    );
}

/// Every JSON report goes through here: proxy passwords are redacted (`user:***@`).
fn emit(value: &Value) {
    crate::interrupt::reporting();
    outln!(
        "{}",
        edgenet_core::redact::redact_credentials(
            &serde_json::to_string_pretty(value).expect("reports serialize")
        )
    );
}
