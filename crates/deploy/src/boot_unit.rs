//! The systemd unit that deploys again at every boot. Kernel objects (bridge, veths, node
//! namespaces, nftables) vanish at a reboot while the state directory stays; running the same
//! `edgenet deploy` early in the boot brings back the same switch, subnet, MACs and nodes.
//!
//! Order: after the network is online and the adapter of an external switch exists, so the
//! adapter's boot-time configuration is there to be moved to the switch; before K3s and the
//! kubelet, which must find the nodes' network in place. The adapter is waited for by a short
//! loop before the deploy (`ExecStartPre=`), by its name or its MAC, not through its device
//! unit: a NIC renamed at boot (names swapped, a new naming scheme) has no device unit under
//! the old name, and `Wants=` on it held the boot for the device timeout (90 s) for nothing.

use std::path::PathBuf;

pub const UNIT_NAME: &str = "edgenet.service";
/// The first line of every unit edgenet writes: `install-unit` only overwrites or deletes a
/// file that has it (or the header of units of earlier versions).
pub const MARK: &str = "# written by edgenet install-unit";
const OLD_MARK: &str = "# Written by `edgenet install-unit`";

/// Whether the unit file text `text` was written by edgenet.
pub fn is_ours(text: &str) -> bool {
    text.lines().any(|l| l == MARK || l.starts_with(OLD_MARK))
}
pub const DEFAULT_UNIT_DIR: &str = "/etc/systemd/system";
/// Units that must start after edgenet (K3s server and agent, kubeadm's kubelet).
pub const BEFORE: &[&str] = &["k3s.service", "k3s-agent.service", "kubelet.service"];

/// What the unit runs: the same deploy the operator ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootUnit {
    pub binary: PathBuf,
    /// `None`: the built-in default config.
    pub config: Option<PathBuf>,
    pub machine: Option<usize>,
    pub machine_name: Option<String>,
    /// The external switch's adapter, waited for before the deploy.
    pub adapter: Option<String>,
    /// Its MAC (as the deployment recorded it, else as the adapter has it now): the adapter
    /// under another name counts as there.
    pub adapter_mac: Option<String>,
    /// Environment the deploy needs (state directory, resolver files), `KEY=VALUE`.
    pub environment: Vec<(String, String)>,
    /// The unit the Debian package ships: it does nothing until the config file exists, and
    /// takes extra deploy arguments (`--machine N`) from `EDGENET_ARGS` in this file.
    pub packaged: bool,
}

/// Where the packaged unit finds its config and its extra arguments.
pub const PACKAGED_CONFIG: &str = "/etc/edgenet/config.json";
pub const PACKAGED_DEFAULTS: &str = "/etc/default/edgenet";

impl BootUnit {
    /// The unit of the Debian package (`edgenet install-unit` writes a more specific one to
    /// /etc/systemd/system, which takes precedence).
    pub fn packaged() -> BootUnit {
        BootUnit {
            binary: "/usr/bin/edgenet".into(),
            config: Some(PACKAGED_CONFIG.into()),
            machine: None,
            machine_name: None,
            adapter: None,
            adapter_mac: None,
            environment: vec![(
                "EDGENET_STATE_DIR".into(),
                crate::state::DEFAULT_STATE_DIR.into(),
            )],
            packaged: true,
        }
    }
}

impl BootUnit {
    /// The command line of `ExecStart=`, unquoted.
    pub fn command(&self) -> Vec<String> {
        let mut args = vec![self.binary.display().to_string(), "deploy".into()];
        if let Some(c) = &self.config {
            args.extend(["--config".into(), c.display().to_string()]);
        }
        if let Some(m) = self.machine {
            args.extend(["--machine".into(), m.to_string()]);
        }
        if let Some(n) = &self.machine_name {
            args.extend(["--machine-name".into(), n.clone()]);
        }
        // At boot nothing else should hold the lock for long; a generous wait rather than a
        // failed boot.
        args.extend(["--wait".into(), "300".into()]);
        args
    }

    pub fn render(&self) -> String {
        let mut unit = String::new();
        unit.push_str(MARK);
        unit.push('\n');
        unit.push_str("# Written by `edgenet install-unit`: deploys the cluster's host networking again at every\n");
        unit.push_str("# boot (kernel objects do not survive a reboot; the state in the state directory does).\n");
        unit.push_str("[Unit]\n");
        unit.push_str("Description=edgenet host networking of the edge Kubernetes cluster\n");
        unit.push_str("Documentation=man:edgenet(1)\n");
        unit.push_str("Wants=network-online.target\n");
        unit.push_str("After=network-online.target\n");
        // Docker sets its FORWARD policy drop when it starts: running after it (if it is
        // installed; `After=` alone pulls nothing in) lets deploy see Docker's chains and keep
        // its DOCKER-USER accepts in place. deploy also prepares DOCKER-USER itself, so a Docker
        // started later keeps them.
        unit.push_str("After=docker.service containerd.service\n");
        unit.push_str(&format!("Before={}\n", BEFORE.join(" ")));
        if self.packaged {
            unit.push_str(&format!("ConditionPathExists={PACKAGED_CONFIG}\n"));
        }
        // A failure that stays (a missing adapter, a broken host) must not restart forever:
        // after this many tries the unit stays failed and `systemctl status` shows why.
        unit.push_str("StartLimitIntervalSec=30min\n");
        unit.push_str("StartLimitBurst=20\n");
        unit.push_str("\n[Service]\n");
        unit.push_str("Type=oneshot\n");
        unit.push_str("RemainAfterExit=yes\n");
        for (k, v) in &self.environment {
            unit.push_str(&format!("Environment={}\n", quote_env(&format!("{k}={v}"))));
        }
        unit.push_str("Environment=NO_COLOR=1\n");
        let mut command: Vec<String> = self.command().iter().map(|a| quote(a)).collect();
        if self.packaged {
            unit.push_str(&format!("EnvironmentFile=-{PACKAGED_DEFAULTS}\n"));
            // Split into words by systemd: `EDGENET_ARGS="--machine 1"`.
            command.push("$EDGENET_ARGS".into());
        }
        if let Some(adapter) = &self.adapter {
            let wait: Vec<String> = self
                .adapter_wait(adapter)
                .iter()
                .map(|a| quote(a))
                .collect();
            // `-`: a NIC that never comes is the deploy's to report, not this loop's.
            unit.push_str(&format!("ExecStartPre=-{}\n", wait.join(" ")));
        }
        unit.push_str(&format!("ExecStart={}\n", command.join(" ")));
        // A DHCP lease that is late, or a lock held a moment: try again rather than leave the
        // nodes without a network.
        unit.push_str("Restart=on-failure\n");
        unit.push_str("RestartSec=10s\n");
        // Exit 1 and 2 are the config's problems: retrying cannot fix them. An adapter the
        // deployment was made on that is not there yet is exit 3 (`adapter-not-there`): retried.
        unit.push_str("RestartPreventExitStatus=1 2\n");
        unit.push_str("TimeoutStartSec=10min\n");
        unit.push_str("\n[Install]\n");
        unit.push_str(&format!(
            "WantedBy=multi-user.target {}\n",
            BEFORE.join(" ")
        ));
        unit
    }
}

/// How long the unit waits for the adapter before deploying anyway (the deploy then says
/// what is missing): systemd's own device timeout.
pub const ADAPTER_WAIT_SECS: u32 = 90;

impl BootUnit {
    /// The command of `ExecStartPre=`, unquoted: up to [`ADAPTER_WAIT_SECS`] seconds until
    /// `adapter` exists or a link has the adapter's MAC (renamed at boot: the deploy follows
    /// the MAC), at once when either is there. Name and MAC are arguments, never shell text.
    pub fn adapter_wait(&self, adapter: &str) -> Vec<String> {
        let script = format!(
            "i=0; while [ $i -lt {ADAPTER_WAIT_SECS} ]; do [ -e \"/sys/class/net/$1\" ] && exit 0; [ -n \"$2\" ] && grep -qixF -e \"$2\" /sys/class/net/*/address 2>/dev/null && exit 0; i=$((i+1)); sleep 1; done; exit 1"
        );
        vec![
            "/bin/sh".into(),
            "-c".into(),
            script,
            "edgenet-adapter-wait".into(),
            adapter.to_string(),
            self.adapter_mac.clone().unwrap_or_default(),
        ]
    }
}

/// One word of a unit's command line: `%` and `$` are doubled (systemd expands both in
/// `ExecStart=`), and a word with spaces, quotes or backslashes is double-quoted.
fn quote(word: &str) -> String {
    quote_escaped(word.replace('%', "%%").replace('$', "$$"))
}

/// One `Environment=` assignment: only `%` is doubled. systemd expands specifiers there but
/// not variables, so a `$` stays as it is (systemd.exec(5)); `$$` would reach the program.
fn quote_env(word: &str) -> String {
    quote_escaped(word.replace('%', "%%"))
}

fn quote_escaped(escaped: String) -> String {
    if escaped.is_empty()
        || escaped
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | ';'))
    {
        format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit() -> BootUnit {
        BootUnit {
            binary: "/usr/bin/edgenet".into(),
            config: Some("/etc/edgenet/my config.json".into()),
            machine: Some(1),
            machine_name: None,
            adapter: Some("en-p1".into()),
            adapter_mac: Some("02:00:00:00:00:01".into()),
            environment: vec![("EDGENET_STATE_DIR".into(), "/var/lib/edgenet".into())],
            packaged: false,
        }
    }

    #[test]
    fn the_packaged_unit_waits_for_a_config_and_takes_extra_arguments() {
        let text = BootUnit::packaged().render();
        assert!(text.contains("ConditionPathExists=/etc/edgenet/config.json\n"));
        assert!(text.contains("EnvironmentFile=-/etc/default/edgenet\n"));
        assert!(text.contains(
            "ExecStart=/usr/bin/edgenet deploy --config /etc/edgenet/config.json --wait 300 $EDGENET_ARGS\n"
        ));
    }

    #[test]
    fn the_unit_runs_the_deploy_after_the_adapter_and_before_kubernetes() {
        let text = unit().render();
        // The adapter is waited for by name or MAC, never through the device unit of a name
        // a boot may have given to another NIC (or to none).
        assert!(!text.contains("sys-subsystem-net-devices"), "{text}");
        assert!(
            text.contains("ExecStartPre=-/bin/sh -c \"i=0; while [ $$i -lt 90 ]"),
            "{text}"
        );
        assert!(
            text.contains("edgenet-adapter-wait en-p1 02:00:00:00:00:01\n"),
            "{text}"
        );
        assert!(text.contains("Before=k3s.service k3s-agent.service kubelet.service\n"));
        // Ordered after Docker without pulling it in.
        assert!(text.contains("After=docker.service containerd.service\n"));
        assert!(!text.contains("Wants=docker"));
        assert!(text.contains(
            "ExecStart=/usr/bin/edgenet deploy --config \"/etc/edgenet/my config.json\" --machine 1 --wait 300\n"
        ));
        assert!(text.contains("Environment=EDGENET_STATE_DIR=/var/lib/edgenet\n"));
        assert!(text.contains("Type=oneshot\n"));
        assert!(text.starts_with(&format!("{MARK}\n")));
        assert!(is_ours(&text));
        assert!(!is_ours("[Unit]\nDescription=someone else's\n"));
        // Restarts stop when the failure is permanent.
        let limits = text.split("[Service]").next().unwrap();
        assert!(limits.contains("StartLimitIntervalSec=30min\n"), "{text}");
        assert!(limits.contains("StartLimitBurst=20\n"), "{text}");
    }

    #[test]
    fn environment_keeps_dollar_and_doubles_percent() {
        let mut u = unit();
        u.environment = vec![("EDGENET_STATE_DIR".into(), "/tmp/u 3/st$x%y".into())];
        let text = u.render();
        // systemd expands specifiers (`%`) in Environment= but not variables (`$`).
        assert!(
            text.contains("Environment=\"EDGENET_STATE_DIR=/tmp/u 3/st$x%%y\"\n"),
            "{text}"
        );
        // The command line still doubles both.
        assert_eq!(quote("st$x%y"), "st$$x%%y");
    }
}
