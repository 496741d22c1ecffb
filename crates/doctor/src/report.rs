//! The doctor's report: one line per check, PASS/WARN/FAIL with the fix.

use serde::Serialize;

/// Schema of `edgenet doctor --output json`.
pub const DOCTOR_SCHEMA: &str = "edgenet.doctor/v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pass,
    /// Worth knowing, not broken (e.g. nothing answers on 6443 before Kubernetes runs).
    Warn,
    Fail,
    /// Not run, with the reason.
    Skip,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Node name, or `host`.
    pub scope: String,
    /// Stable kebab-case identifier (`dns`, `path-mtu`, `host-firewall`, …).
    pub check: String,
    /// The address a per-address check is about (`dns`: the server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn new(scope: &str, check: &str, status: Status, detail: impl Into<String>) -> Self {
        Check {
            scope: scope.to_string(),
            check: check.to_string(),
            address: None,
            status,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn pass(scope: &str, check: &str, detail: impl Into<String>) -> Self {
        Self::new(scope, check, Status::Pass, detail)
    }

    pub fn fail(
        scope: &str,
        check: &str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(scope, check, Status::Fail, detail).fix(fix)
    }

    pub fn warn(scope: &str, check: &str, detail: impl Into<String>) -> Self {
        Self::new(scope, check, Status::Warn, detail)
    }

    pub fn skip(scope: &str, check: &str, detail: impl Into<String>) -> Self {
        Self::new(scope, check, Status::Skip, detail)
    }

    pub fn at(mut self, address: impl std::fmt::Display) -> Self {
        self.address = Some(address.to_string());
        self
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    pub fn line(&self) -> String {
        let check = match &self.address {
            Some(a) => format!("{} {a}", self.check),
            None => self.check.clone(),
        };
        let mut s = format!(
            "{} {:<14} {:<18} {}",
            self.status.as_str(),
            self.scope,
            check,
            self.detail
        );
        if let Some(fix) = &self.fix {
            s.push_str(&format!("\n     fix: {fix}"));
        }
        s
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub machine: String,
    pub checks: Vec<Check>,
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
}

impl Report {
    pub fn new(machine: &str, checks: Vec<Check>) -> Self {
        let count = |s| checks.iter().filter(|c| c.status == s).count();
        Report {
            schema: DOCTOR_SCHEMA,
            machine: machine.to_string(),
            pass: count(Status::Pass),
            warn: count(Status::Warn),
            fail: count(Status::Fail),
            checks,
        }
    }

    pub fn failed(&self) -> bool {
        self.fail > 0
    }

    pub fn text(&self) -> String {
        let mut lines: Vec<String> = self.checks.iter().map(Check::line).collect();
        lines.push(format!(
            "doctor on {}: {} PASS, {} WARN, {} FAIL",
            self.machine, self.pass, self.warn, self.fail
        ));
        lines.join("\n") + "\n"
    }
}
