//! The only place that runs `iptables-nft`: edgenet's accept rules in Docker's `DOCKER-USER`
//! chain, the place Docker documents for rules that must come before its own.
//!
//! iptables-nft, not plain `iptables`: edgenet finds Docker's rules in the nftables ruleset,
//! which is where iptables-nft keeps them (Debian's default since 10). Runs in the calling
//! thread's network namespace, like [`crate::nft`].

use std::io;
use std::process::{Command, Stdio};

use crate::error::HostError;

pub const PROGRAM: &str = "iptables-nft";

/// `-w`: wait for the xtables lock instead of failing while Docker holds it.
fn run(args: &[String]) -> Result<std::process::Output, HostError> {
    let what = args.join(" ");
    let out = Command::new(PROGRAM)
        .arg("-w")
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            let e = if e.kind() == io::ErrorKind::NotFound {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "iptables-nft is not installed (Debian package `iptables`)",
                )
            } else {
                e
            };
            HostError::new("run iptables-nft", &what, e)
        })?;
    Ok(out)
}

fn spec(chain: &str, op: &str, rule: &[&str]) -> Vec<String> {
    let mut args = vec!["-t".to_string(), "filter".into(), op.into(), chain.into()];
    args.extend(rule.iter().map(|s| s.to_string()));
    args
}

/// Whether `rule` is in `chain` of the `filter` table (`iptables -C`).
pub fn has_rule(chain: &str, rule: &[&str]) -> Result<bool, HostError> {
    let out = run(&spec(chain, "-C", rule))?;
    Ok(out.status.success())
}

/// Creates `chain` in the `filter` table unless it exists (`-N`); returns whether it did.
pub fn ensure_chain(chain: &str) -> Result<bool, HostError> {
    let list = vec!["-t".to_string(), "filter".into(), "-S".into(), chain.into()];
    if run(&list)?.status.success() {
        return Ok(false);
    }
    let args = vec!["-t".to_string(), "filter".into(), "-N".into(), chain.into()];
    crate::nft::forget_ruleset();
    let out = run(&args)?;
    if out.status.success() {
        Ok(true)
    } else {
        Err(HostError::new(
            "create iptables chain",
            args.join(" "),
            io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        ))
    }
}

/// Inserts `rule` at the top of `chain`.
pub fn insert(chain: &str, rule: &[&str]) -> Result<(), HostError> {
    let args = spec(chain, "-I", rule);
    crate::nft::forget_ruleset();
    let out = run(&args)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(HostError::new(
            "insert iptables rule",
            args.join(" "),
            io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        ))
    }
}

/// Deletes every copy of `rule` from `chain`; returns whether there was one. A missing chain
/// or rule is not an error (teardown stays idempotent).
pub fn delete_all(chain: &str, rule: &[&str]) -> Result<bool, HostError> {
    let mut any = false;
    // Bounded: a rule that `-C` sees but `-D` cannot delete must not loop forever.
    for _ in 0..16 {
        if !has_rule(chain, rule)? {
            return Ok(any);
        }
        let args = spec(chain, "-D", rule);
        crate::nft::forget_ruleset();
        let out = run(&args)?;
        if !out.status.success() {
            return Err(HostError::new(
                "delete iptables rule",
                args.join(" "),
                io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
            ));
        }
        any = true;
    }
    Ok(any)
}

/// The rules of `chain` in the `filter` table as `iptables -S` prints them (`-A CHAIN …`, in
/// order), or `None` when the chain does not exist. Reads only.
pub fn list_rules(chain: &str) -> Result<Option<Vec<String>>, HostError> {
    let args = vec!["-t".to_string(), "filter".into(), "-S".into(), chain.into()];
    let out = run(&args)?;
    if !out.status.success() {
        return Ok(None);
    }
    Ok(Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("-A "))
            .map(String::from)
            .collect(),
    ))
}
