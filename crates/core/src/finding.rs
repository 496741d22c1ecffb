//! A finding of `edgenet check`: stable code, severity, JSON path, message, hint.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    /// Something the user should know that is not a problem with the file: a rule that was not
    /// run, a value chosen on their behalf.
    Notice,
}

/// Stable finding codes. The string form (`Code::as_str`) is the interface scripts rely on;
/// never rename one, add new ones instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    // Rule 1: syntax, types, enum values, required and forbidden fields.
    WrongType,
    UnknownValue,
    MisspeltKey,
    RequiredField,
    ForbiddenField,
    IgnoredField,
    LegacyField,
    MachineCount,
    NodeMissing,
    WindowsControlPlane,
    InvalidName,
    /// A machine name in capitals (Windows' COMPUTERNAME is), read in lower case.
    MachineNameCase,
    Placeholder,
    KeyCase,
    DuplicateKey,
    NotApplied,
    ConflictingFields,
    WrongFile,
    NotAConfig,
    /// A value in a shape PowerShell writes (a boolean as text, a one-element array as its
    /// element), read as meant and said.
    PowershellShape,
    /// A `SchemaVersion` no AKS Edge Essentials release edgenet knows wrote.
    UnknownSchemaVersion,
    /// The file is JSON with comments or trailing commas, not strict JSON: read (as PowerShell
    /// 7's `ConvertFrom-Json` reads it), though other tools refuse it.
    JsonExtension,
    /// A file read as Windows-1252 because it is not UTF-8.
    FileEncoding,
    // Rule 2: address syntax and class.
    InvalidIpv4,
    Ipv6NotSupported,
    AddressNotUnicast,
    // Rule 3: subnet sanity.
    InvalidCidr,
    PrefixHostBits,
    SubnetTooSmall,
    // Rule 4: addresses inside their subnet, distinct.
    AddressOutsideSubnet,
    AddressReserved,
    AddressDuplicate,
    ServiceRangeOutsideSubnet,
    ServiceRangeSize,
    PortForwardInvalid,
    // Rule 5: overlaps.
    OverlapsKubernetes,
    OverlapsHostNetwork,
    NoFreeSubnet,
    AddressIsHost,
    HostFirewallDrops,
    // Rule 6: MACs.
    InvalidMac,
    MacNotUnicast,
    MacDuplicate,
    // Rule 7: MTU.
    MtuRange,
    MtuAboveAdapter,
    // Rule 8: DNS.
    DnsLoopback,
    DnsNotFound,
    DnsEmpty,
    DnsTooMany,
    DnsDuplicate,
    // Rule 9: proxy.
    ProxyUrl,
    NoProxyEntry,
    ProxyWhileOffline,
    // Rule 10: distribution and control plane.
    PluginMismatch,
    ControlPlaneCount,
    // Rule 11: external switch and adapter.
    SwitchName,
    AdapterMissing,
    /// The adapter the config names was renamed since this deployment took it.
    AdapterRenamed,
    AdapterDown,
    AdapterEnslaved,
    AdapterWireless,
    AdapterNotEthernet,
    AdapterManaged,
    /// The adapter holds addresses, none of them on the config's LAN.
    LanMismatch,
    /// Objects of another edgenet deployment that nothing records any more.
    LeftoverObjects,
    /// A whole other edgenet deployment in this network namespace (a notice).
    AnotherDeployment,
    /// `--machine-name`/`EDGENET_MACHINE_NAME` differs from this machine's written
    /// `Machines[N].MachineName`, and wins.
    MachineNameOverridden,
    /// `deploy -c FILE` without `--machine-name` on a deployment recorded under another name
    /// than the file or the host name gives: the recorded name is kept (a notice).
    MachineNameKept,
    /// The machine is named after a host name longer than a machine name may be: shortened
    /// (a notice).
    MachineNameShortened,
    /// A configured DNS server did not answer a query from this host (`SkipDnsCheck` off).
    DnsSilent,
    // Rule 12: address-free probe.
    ProbeNotRun,
    AddressInUse,
    /// Nothing answered the ARP probe for the LAN's gateway.
    GatewaySilent,
    // Rule 13: vm nodes.
    VmSize,
    VmImage,
    VmSocketPath,
    // Host-dependent rules not run.
    HostChecksSkipped,
    /// Rules not run because a value they all depend on (DeploymentType) is not valid.
    RulesSkipped,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        use Code::*;
        match self {
            WrongType => "wrong-type",
            UnknownValue => "unknown-value",
            MisspeltKey => "misspelt-key",
            RequiredField => "required-field",
            ForbiddenField => "forbidden-field",
            IgnoredField => "ignored-field",
            LegacyField => "legacy-field",
            MachineCount => "machine-count",
            NodeMissing => "node-missing",
            WindowsControlPlane => "windows-control-plane",
            InvalidName => "invalid-name",
            MachineNameCase => "machine-name-case",
            Placeholder => "placeholder",
            KeyCase => "key-case",
            DuplicateKey => "duplicate-key",
            NotApplied => "not-applied",
            ConflictingFields => "conflicting-fields",
            WrongFile => "wrong-file",
            NotAConfig => "not-a-config",
            PowershellShape => "powershell-shape",
            UnknownSchemaVersion => "unknown-schema-version",
            JsonExtension => "json-extension",
            FileEncoding => "file-encoding",
            InvalidIpv4 => "invalid-ipv4",
            Ipv6NotSupported => "ipv6-not-supported",
            AddressNotUnicast => "address-not-unicast",
            InvalidCidr => "invalid-cidr",
            PrefixHostBits => "prefix-host-bits",
            SubnetTooSmall => "subnet-too-small",
            AddressOutsideSubnet => "address-outside-subnet",
            AddressReserved => "address-reserved",
            AddressDuplicate => "address-duplicate",
            ServiceRangeOutsideSubnet => "service-range-outside-subnet",
            ServiceRangeSize => "service-range-size",
            PortForwardInvalid => "port-forward-invalid",
            OverlapsKubernetes => "overlaps-kubernetes-range",
            OverlapsHostNetwork => "overlaps-host-network",
            NoFreeSubnet => "no-free-subnet",
            AddressIsHost => "address-is-host",
            HostFirewallDrops => "host-firewall-drops",
            InvalidMac => "invalid-mac",
            MacNotUnicast => "mac-not-unicast",
            MacDuplicate => "mac-duplicate",
            MtuRange => "mtu-range",
            MtuAboveAdapter => "mtu-above-adapter",
            DnsLoopback => "dns-loopback",
            DnsNotFound => "dns-not-found",
            DnsEmpty => "dns-empty",
            DnsTooMany => "dns-too-many",
            DnsDuplicate => "dns-duplicate",
            ProxyUrl => "proxy-url",
            NoProxyEntry => "no-proxy-entry",
            ProxyWhileOffline => "proxy-while-offline",
            PluginMismatch => "plugin-mismatch",
            ControlPlaneCount => "control-plane-count",
            SwitchName => "switch-name",
            AdapterMissing => "adapter-missing",
            AdapterRenamed => "adapter-renamed",
            AdapterDown => "adapter-down",
            AdapterEnslaved => "adapter-enslaved",
            AdapterWireless => "adapter-wireless",
            AdapterNotEthernet => "adapter-not-ethernet",
            AdapterManaged => "adapter-managed",
            LanMismatch => "lan-mismatch",
            LeftoverObjects => "leftover-objects",
            AnotherDeployment => "another-deployment",
            DnsSilent => "dns-silent",
            MachineNameOverridden => "machine-name-overridden",
            MachineNameKept => "machine-name-kept",
            MachineNameShortened => "machine-name-shortened",
            ProbeNotRun => "probe-not-run",
            AddressInUse => "address-in-use",
            GatewaySilent => "gateway-silent",
            VmSize => "vm-size",
            VmImage => "vm-image",
            VmSocketPath => "vm-socket-path",
            HostChecksSkipped => "host-checks-skipped",
            RulesSkipped => "rules-skipped",
        }
    }

    /// The SPEC §4 rule group the code belongs to (0: not a rule, a notice about rules).
    pub fn rule(self) -> u8 {
        use Code::*;
        match self {
            WrongType
            | UnknownValue
            | MisspeltKey
            | RequiredField
            | ForbiddenField
            | IgnoredField
            | LegacyField
            | MachineCount
            | NodeMissing
            | WindowsControlPlane
            | InvalidName
            | MachineNameCase
            | Placeholder
            | KeyCase
            | DuplicateKey
            | NotApplied
            | ConflictingFields
            | WrongFile
            | NotAConfig
            | PowershellShape
            | UnknownSchemaVersion
            | JsonExtension
            | FileEncoding
            | MachineNameOverridden
            | MachineNameKept
            | MachineNameShortened => 1,
            InvalidIpv4 | Ipv6NotSupported | AddressNotUnicast => 2,
            InvalidCidr | PrefixHostBits | SubnetTooSmall => 3,
            AddressOutsideSubnet
            | AddressReserved
            | AddressDuplicate
            | ServiceRangeOutsideSubnet
            | ServiceRangeSize
            | PortForwardInvalid => 4,
            OverlapsKubernetes | OverlapsHostNetwork | NoFreeSubnet | AddressIsHost => 5,
            InvalidMac | MacNotUnicast | MacDuplicate => 6,
            MtuRange | MtuAboveAdapter => 7,
            DnsLoopback | DnsNotFound | DnsEmpty | DnsTooMany | DnsDuplicate | DnsSilent => 8,
            ProxyUrl | NoProxyEntry | ProxyWhileOffline => 9,
            PluginMismatch | ControlPlaneCount => 10,
            SwitchName | AdapterMissing | AdapterRenamed | AdapterDown | AdapterEnslaved
            | AdapterWireless | AdapterNotEthernet | AdapterManaged | LanMismatch
            | HostFirewallDrops | LeftoverObjects | AnotherDeployment => 11,
            ProbeNotRun | AddressInUse | GatewaySilent => 12,
            VmSize | VmImage | VmSocketPath => 13,
            HostChecksSkipped | RulesSkipped => 0,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub code: Code,
    pub rule: u8,
    pub severity: Severity,
    /// JSON path in the config (`Machines[0].LinuxNode.Ip4Address`); empty for the whole file.
    pub path: String,
    pub message: String,
    /// Always present in JSON (`null` when there is none).
    pub hint: Option<String>,
}

impl Finding {
    pub fn new(
        code: Code,
        severity: Severity,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Finding {
            code,
            rule: code.rule(),
            severity,
            path: path.into(),
            message: message.into(),
            hint: None,
        }
    }

    pub fn error(code: Code, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(code, Severity::Error, path, message)
    }

    pub fn warning(code: Code, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(code, Severity::Warning, path, message)
    }

    pub fn notice(code: Code, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(code, Severity::Notice, path, message)
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// A value as a message quotes it: `"…"`, cut after 48 characters with the full length said,
/// so a pasted blob or a runaway value never floods the terminal or a log.
pub fn excerpt(value: &str) -> String {
    const KEEP: usize = 48;
    let n = value.chars().count();
    if n <= KEEP {
        format!("{value:?}")
    } else {
        let head: String = value.chars().take(KEEP).collect();
        format!("{:?}… ({n} characters)", head)
    }
}
