//! A typed walk over the JSON tree that records every problem instead of stopping at the first.
//!
//! serde's derive gives up at the first wrong type; `check` must report them all, each with its
//! JSON path, so the loader reads a `serde_json::Value` field by field through this reader.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use serde_json::{Map, Value};

use super::template::is_placeholder;
use crate::finding::{Code, Finding};
use crate::mac::MacAddr;

/// A JSON object and where it sits in the file. Keys are found in any case, as PowerShell's
/// `ConvertFrom-Json` objects do.
pub(super) struct Obj<'v> {
    /// The path as written in the file (the user's spelling, the schema version they used).
    pub path: String,
    /// The same place in the current schema, which later rules name; `None` when it is `path`
    /// (the common case: one string per object, not two).
    canon: Option<String>,
    pub map: &'v Map<String, Value>,
}

/// Objects with more keys than this are searched by hash; below, one pass over the keys (which
/// also finds a key written in another case) is cheaper than hashing the key.
const SCAN_KEYS: usize = 16;

impl<'v> Obj<'v> {
    /// The root object.
    pub fn root(map: &'v Map<String, Value>) -> Self {
        Obj {
            path: String::new(),
            canon: None,
            map,
        }
    }

    /// The object `map` written at `path`, at `canon` in the current schema.
    pub fn new(path: String, canon: String, map: &'v Map<String, Value>) -> Self {
        let canon = (canon != path).then_some(canon);
        Obj { path, canon, map }
    }

    /// Where this object sits in the current schema.
    pub fn canon(&self) -> &str {
        self.canon.as_deref().unwrap_or(&self.path)
    }

    /// The key as the file spells it and its value: exactly `key`, else `key` in another case.
    pub fn entry(&self, key: &str) -> Option<(&'v str, &'v Value)> {
        let map = self.map;
        if map.len() > SCAN_KEYS {
            if let Some((k, v)) = map.get_key_value(key) {
                return Some((k.as_str(), v));
            }
            return map
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(k, v)| (k.as_str(), v));
        }
        let mut other = None;
        for (k, v) in map {
            if k == key {
                return Some((k.as_str(), v));
            }
            if other.is_none() && k.eq_ignore_ascii_case(key) {
                other = Some((k.as_str(), v));
            }
        }
        other
    }

    /// The key as the file spells it: exactly `key`, else `key` in another case.
    pub fn key(&self, key: &str) -> Option<&'v str> {
        self.entry(key).map(|(k, _)| k)
    }

    /// The raw value of `key` in any case (`null` included).
    pub fn raw(&self, key: &str) -> Option<&'v Value> {
        self.entry(key).map(|(_, v)| v)
    }

    /// The value of `key`, with `null` and `""` meaning "not set" as AKS Edge Essentials writes.
    /// A `<…>` placeholder from `config new` also reads as unset; [`Reader::placeholders`]
    /// reports it.
    pub fn get(&self, key: &str) -> Option<&'v Value> {
        set(key, self.raw(key))
    }

    /// The path of `key` as written in the file (canonical spelling when absent).
    pub fn at(&self, key: &str) -> String {
        join(&self.path, self.key(key).unwrap_or(key))
    }

    /// The path of `key` in the current schema.
    pub fn canon_at(&self, key: &str) -> String {
        join(self.canon(), key)
    }
}

/// `raw` (the value of `key`) unless it means "not set": `null`, `""`, a placeholder.
fn set<'v>(key: &str, raw: Option<&'v Value>) -> Option<&'v Value> {
    match raw {
        None | Some(Value::Null) => None,
        Some(Value::String(s))
            if s.trim().is_empty() || (is_placeholder(s) && !windows_bypass(key, s)) =>
        {
            None
        }
        Some(v) => Some(v),
    }
}

pub(super) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        let mut path = String::with_capacity(parent.len() + 1 + key.len());
        path.push_str(parent);
        path.push('.');
        path.push_str(key);
        path
    }
}

/// `parent[i]`.
pub(super) fn index(parent: &str, i: usize) -> String {
    let mut path = String::with_capacity(parent.len() + 6);
    path.push_str(parent);
    path.push('[');
    push_decimal(&mut path, i);
    path.push(']');
    path
}

fn push_decimal(out: &mut String, n: usize) {
    if n >= 10 {
        push_decimal(out, n / 10);
    }
    out.push(char::from(b'0' + (n % 10) as u8));
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Short rendering of a value for messages (long strings are cut).
pub(super) fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(57).collect::<String>())
    } else {
        s
    }
}

/// Where a value was written: its object's path and the key as spelt there. The path itself is
/// written out only for a finding.
#[derive(Clone, Copy)]
struct Written<'p, 'v> {
    parent: &'p str,
    key: &'v str,
}

impl Written<'_, '_> {
    fn path(self) -> String {
        join(self.parent, self.key)
    }
}

#[derive(Default)]
pub(super) struct Reader {
    pub findings: Vec<Finding>,
    pub invalid: BTreeSet<String>,
    /// Canonical path → the path the file wrote it at, where they differ.
    pub aliases: BTreeMap<String, String>,
}

impl Reader {
    /// Notes where the canonical path of `key` in `obj` was written (`written`: the file's
    /// spelling of the key, absent when the file has none), where the two differ. No path is
    /// written out when they do not: the written and the canonical path of a key differ
    /// exactly when the object's two paths do or the key is spelt otherwise (a key in another
    /// case has the same length).
    fn note(&mut self, obj: &Obj<'_>, key: &str, written: Option<&str>) {
        if obj.canon.is_some() || written.is_some_and(|w| w != key) {
            self.aliases
                .insert(obj.canon_at(key), join(&obj.path, written.unwrap_or(key)));
        }
    }

    /// The file's spelling of `key` in `obj` and its raw value (`null` included), noting
    /// where its canonical path points.
    fn find<'v>(&mut self, obj: &Obj<'v>, key: &str) -> Option<(&'v str, &'v Value)> {
        let entry = obj.entry(key);
        self.note(obj, key, entry.map(|(k, _)| k));
        entry
    }

    /// The value of `key` in `obj` as [`Obj::get`] gives it, with the path it was written at
    /// (for a finding about it), noting where its canonical path points.
    fn value<'o, 'v>(
        &mut self,
        obj: &'o Obj<'v>,
        key: &str,
    ) -> Option<(Written<'o, 'v>, &'v Value)> {
        let (written, raw) = self.find(obj, key)?;
        let v = set(key, Some(raw))?;
        Some((
            Written {
                parent: &obj.path,
                key: written,
            },
            v,
        ))
    }

    /// The written path of `key` in `obj`, remembering where its canonical path points.
    pub fn at(&mut self, obj: &Obj<'_>, key: &str) -> String {
        let written = self.find(obj, key).map(|(k, _)| k);
        join(&obj.path, written.unwrap_or(key))
    }

    /// Where the file wrote the canonical path `canon` (itself when not aliased).
    pub fn written(&self, canon: &str) -> String {
        super::written_path(&self.aliases, canon)
    }

    /// Records that the canonical `canon` was written at `at` (a field read from an older form).
    pub fn alias(&mut self, canon: impl Into<String>, at: impl Into<String>) {
        let (canon, at) = (canon.into(), at.into());
        if canon != at {
            self.aliases.insert(canon, at);
        }
    }

    fn wrong_type(&mut self, path: &str, v: &Value, expected: &str) {
        self.invalid.insert(path.to_string());
        // PowerShell's ConvertTo-Json writes objects deeper than -Depth (2 by default) as
        // their text, "@{Name=…}".
        let hint = match v {
            Value::String(s) if s.trim_start().starts_with("@{") => format!(
                "{path} is a PowerShell object written as text: ConvertTo-Json stopped at its -Depth; write the file with ConvertTo-Json -Depth 8"
            ),
            _ => format!("write {path} as {expected}"),
        };
        self.findings.push(
            Finding::error(
                Code::WrongType,
                path,
                // `null` is its own kind and value: said once (B23 F7).
                if v.is_null() {
                    format!("{path} is null, expected {expected}")
                } else {
                    format!("{path} is {} ({}), expected {expected}", kind(v), show(v))
                },
            )
            .hint(hint),
        );
    }

    pub fn invalid(&mut self, path: &str, finding: Finding) {
        self.invalid.insert(path.to_string());
        self.findings.push(finding);
    }

    /// An object-valued key; `null`/absent gives `None`.
    pub fn object<'v>(&mut self, parent: &Obj<'v>, key: &str) -> Option<Obj<'v>> {
        let (written, v) = self.find(parent, key)?;
        let path = join(&parent.path, written);
        match v {
            Value::Null => None,
            Value::Object(map) => {
                // The canonical path is the written one unless the parent's differ or the key
                // is spelt otherwise (see `note`).
                let canon =
                    (parent.canon.is_some() || written != key).then(|| parent.canon_at(key));
                Some(Obj { path, canon, map })
            }
            v => {
                self.wrong_type(&path, v, "an object");
                None
            }
        }
    }

    pub fn array<'v>(&mut self, parent: &Obj<'v>, key: &str) -> Option<&'v Vec<Value>> {
        let (at, v) = self.value(parent, key)?;
        match v {
            Value::Array(items) => Some(items),
            v => {
                self.wrong_type(&at.path(), v, "an array");
                None
            }
        }
    }

    /// Reports every `<…>` placeholder left in `obj` (not descending into children).
    pub fn placeholders(&mut self, obj: &Obj<'_>) {
        for (key, v) in obj.map {
            if let Value::String(s) = v {
                if is_placeholder(s) && !windows_bypass(key, s) {
                    let path = obj.at(key);
                    self.invalid(
                        &path,
                        Finding::error(
                            Code::Placeholder,
                            &path,
                            format!("{path} is still the placeholder {s}"),
                        )
                        .hint(format!("replace {s} with the real value")),
                    );
                }
            }
        }
    }

    /// Notes keys written in another case than the schema's (read all the same, as PowerShell
    /// does) and warns about keys that look like misspellings of `known` ones. Keys in
    /// `accepted` (AKS Edge Essentials keys edgenet does not use) and any other unknown key pass
    /// silently.
    pub fn check_keys(&mut self, obj: &Obj<'_>, known: &[&str], accepted: &[&str]) {
        self.keys(obj, known, accepted, false);
    }

    /// [`Reader::check_keys`] for the network sections (`Network`, `Edgenet`,
    /// `NetworkConnection`, the top level): there any other unknown key is a warning too, since
    /// a network setting that is silently ignored changes what gets deployed. Not an error: AKS
    /// Edge Essentials itself ignores unknown keys.
    pub fn check_keys_warn_unknown(&mut self, obj: &Obj<'_>, known: &[&str], accepted: &[&str]) {
        self.keys(obj, known, accepted, true);
    }

    fn keys(&mut self, obj: &Obj<'_>, known: &[&str], accepted: &[&str], warn_unknown: bool) {
        self.placeholders(obj);
        for key in obj.map.keys() {
            if known.contains(&key.as_str()) || accepted.contains(&key.as_str()) {
                continue;
            }
            let path = obj.at(key);
            if let Some(canonical) = known
                .iter()
                .chain(accepted)
                .find(|k| k.eq_ignore_ascii_case(key))
            {
                self.findings.push(
                    Finding::notice(
                        Code::KeyCase,
                        &path,
                        format!("{path} is read as {canonical:?} (keys are case-insensitive, as in PowerShell)"),
                    )
                    .hint(if obj.canon().starts_with("Edgenet") {
                        format!("spell it {canonical:?}, as the Edgenet section defines it")
                    } else {
                        format!("spell it {canonical:?}, as New-AksEdgeConfig writes it")
                    }),
                );
                continue;
            }
            if let Some(likely) = likely_key(key, known) {
                self.findings.push(
                    Finding::warning(
                        Code::MisspeltKey,
                        &path,
                        format!(
                            "unknown key {} is ignored; did you mean {likely:?}?",
                            crate::finding::excerpt(key)
                        ),
                    )
                    .hint(format!("rename it to {likely:?}")),
                );
            } else if warn_unknown {
                let place = if obj.path.is_empty() {
                    "the top level".to_string()
                } else {
                    obj.path.clone()
                };
                self.findings.push(
                    Finding::warning(
                        Code::MisspeltKey,
                        &path,
                        format!(
                            "unknown key {} is ignored (not a key of {place})",
                            crate::finding::excerpt(key)
                        ),
                    )
                    .hint(format!(
                        "remove it; the keys of {place} are {}",
                        known.join(", ")
                    )),
                );
            }
        }
    }

    pub fn string(&mut self, obj: &Obj<'_>, key: &str) -> Option<String> {
        let (at, v) = self.value(obj, key)?;
        match v {
            Value::String(s) => Some(s.trim().to_string()),
            v => {
                self.wrong_type(&at.path(), v, "a string");
                None
            }
        }
    }

    pub fn bool(&mut self, obj: &Obj<'_>, key: &str) -> Option<bool> {
        let (at, v) = self.value(obj, key)?;
        match v {
            Value::Bool(b) => Some(*b),
            // PowerShell-made files sometimes carry "true"/"false" as strings: read as the
            // word says, but said, since PowerShell itself (`if ($cfg.Network.InternetDisabled)`)
            // takes any non-empty string as true, "false" included.
            Value::String(s)
                if s.trim().eq_ignore_ascii_case("true")
                    || s.trim().eq_ignore_ascii_case("false") =>
            {
                let took = s.trim().eq_ignore_ascii_case("true");
                let path = at.path();
                self.findings.push(
                    Finding::warning(
                        Code::PowershellShape,
                        &path,
                        if took {
                            format!(
                                "{path} is the string {s:?}, not a boolean: edgenet takes it as true, as PowerShell does (any non-empty string is true there)"
                            )
                        } else {
                            format!(
                                "{path} is the string {s:?}, not a boolean: edgenet takes it as false, but PowerShell takes any non-empty string as true, so AKS Edge Essentials' scripts may read it as true"
                            )
                        },
                    )
                    .hint(format!("write {path} as the JSON boolean {took}, without quotes")),
                );
                Some(took)
            }
            v => {
                self.wrong_type(&at.path(), v, "true or false");
                None
            }
        }
    }

    /// A non-negative whole number (numeric strings accepted, as older AKS EE files hold them)
    /// of a field whose valid values are `expected` (`"a whole number from 1 to 31"`). A
    /// number that is not one (`10.0`, `10.5`, `-1`, too large) is refused saying which and
    /// the field's real range, not merely "≥ 0" (B20 D9; the range itself is the field's
    /// rule's to check).
    pub fn uint_in(
        &mut self,
        obj: &Obj<'_>,
        key: &str,
        expected: fmt::Arguments<'_>,
    ) -> Option<u32> {
        let (at, v) = self.value(obj, key)?;
        let n = match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        if let Some(n) = n.and_then(|n| u32::try_from(n).ok()) {
            return Some(n);
        }
        let path = at.path();
        let expected = &expected.to_string();
        let written = match v {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) => Some(s.trim().to_string()),
            _ => None,
        };
        let Some((written, x)) = written.and_then(|w| {
            w.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .map(|x| (w, x))
        }) else {
            self.wrong_type(&path, v, expected);
            return None;
        };
        let (why, hint) = if x < 0.0 {
            ("a negative number".to_string(), format!("write {expected}"))
        } else if x > f64::from(u32::MAX) {
            (
                format!(
                    "above the largest whole number edgenet reads ({})",
                    u32::MAX
                ),
                "write a smaller whole number".to_string(),
            )
        } else if x.fract() == 0.0 {
            (
                "a whole number written with a decimal point or exponent".to_string(),
                format!("write it as {x:.0}, without the decimal point"),
            )
        } else {
            (
                "not a whole number".to_string(),
                format!("write a whole number, e.g. {}", x.round()),
            )
        };
        self.invalid(
            &path,
            Finding::error(
                Code::WrongType,
                &path,
                format!("{path} is {written}, {why}; expected {expected}"),
            )
            .hint(hint),
        );
        None
    }

    pub fn ipv4(&mut self, obj: &Obj<'_>, key: &str) -> Option<Ipv4Addr> {
        let (at, v) = self.value(obj, key)?;
        if let Value::String(s) = v {
            // The common case, without the path a finding would need.
            if let Ok(ip) = s.trim().parse::<Ipv4Addr>() {
                return Some(ip);
            }
        }
        self.ipv4_value(&at.path(), v)
    }

    pub fn ipv4_value(&mut self, path: &str, v: &Value) -> Option<Ipv4Addr> {
        let Value::String(s) = v else {
            self.wrong_type(path, v, "an IPv4 address string such as \"192.168.1.10\"");
            return None;
        };
        let s = s.trim();
        match s.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => Some(ip),
            Ok(IpAddr::V6(_)) => {
                self.invalid(
                    path,
                    Finding::error(
                        Code::Ipv6NotSupported,
                        path,
                        format!(
                            "{path} is the IPv6 address {}; edgenet is IPv4 only",
                            crate::finding::excerpt(s)
                        ),
                    )
                    .hint("use an IPv4 address"),
                );
                None
            }
            Err(_) => {
                let leading_zero = s.split('.').count() == 4
                    && s.split('.').all(|o| {
                        !o.is_empty()
                            && o.len() <= 3
                            && o.bytes().all(|b| b.is_ascii_digit())
                            && o.parse::<u8>().is_ok()
                    });
                self.invalid(
                    path,
                    Finding::error(
                        Code::InvalidIpv4,
                        path,
                        if leading_zero {
                            format!("{path} is {s:?}, ambiguous: an octet has a leading zero (read as octal by some tools)")
                        } else {
                            format!("{path} is {}, which is not an IPv4 address", crate::finding::excerpt(s))
                        },
                    )
                    .hint("write four decimal octets without leading zeros, e.g. \"192.168.1.10\""),
                );
                None
            }
        }
    }

    /// An IPv4 list; a single string (also comma-separated) is accepted as PowerShell users write it.
    pub fn ipv4_list(&mut self, obj: &Obj<'_>, key: &str) -> Option<Vec<Ipv4Addr>> {
        let path = self.at(obj, key);
        match obj.raw(key) {
            None | Some(Value::Null) => None,
            // An empty list is how AKS Edge Essentials files say "not set".
            Some(Value::Array(items)) if items.is_empty() => None,
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    if let Value::String(s) = item {
                        if self.semicolon_list(&index(&path, i), s) {
                            continue;
                        }
                    }
                    if let Some(ip) = self.ipv4_value(&index(&path, i), item) {
                        out.push(ip);
                    }
                }
                Some(out)
            }
            Some(Value::String(s)) => {
                if self.semicolon_list(&path, s) {
                    return None;
                }
                let mut out = Vec::new();
                for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    if let Some(ip) = self.ipv4_value(&path, &Value::String(part.to_string())) {
                        out.push(ip);
                    }
                }
                Some(out)
            }
            Some(v) => {
                self.wrong_type(&path, v, "an array of IPv4 address strings");
                None
            }
        }
    }

    /// A list of addresses separated by `;` as Windows writes lists (`Proxy.No` gets the same
    /// hint): one finding naming the separator, with the list to write, instead of a generic
    /// "not an IPv4 address". `false` (nothing said) when `s` is not such a list.
    fn semicolon_list(&mut self, path: &str, s: &str) -> bool {
        if !s.contains(';') {
            return false;
        }
        let parts: Vec<&str> = s
            .split([',', ';'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        if parts.is_empty() || parts.iter().any(|p| p.parse::<Ipv4Addr>().is_err()) {
            return false;
        }
        let list: Vec<String> = parts.iter().map(|p| format!("{p:?}")).collect();
        self.invalid(
            path,
            Finding::error(
                Code::InvalidIpv4,
                path,
                format!(
                    "{path} is {}, separated by ';' as Windows writes lists; the addresses are separated by commas",
                    crate::finding::excerpt(s)
                ),
            )
            .hint(format!("write a JSON array: [{}]", list.join(", "))),
        );
        true
    }

    pub fn cidr(&mut self, obj: &Obj<'_>, key: &str) -> Option<Ipv4Net> {
        let (at, v) = self.value(obj, key)?;
        let path = at.path();
        let Value::String(s) = v else {
            self.wrong_type(&path, v, "an IPv4 CIDR string such as \"192.168.0.0/24\"");
            return None;
        };
        let s = s.trim();
        if let Ok(net) = s.parse::<Ipv4Net>() {
            // ipnet reads `192.168.050.000/24` as 192.168.50.0; other tools read a leading
            // zero as octal (050 = 40): refuse the ambiguity, as for plain addresses.
            let addr = s.split('/').next().unwrap_or(s);
            if addr.parse::<Ipv4Addr>().is_ok() {
                return Some(net);
            }
            self.invalid(
                &path,
                Finding::error(
                    Code::InvalidCidr,
                    &path,
                    format!("{path} is {s:?}, ambiguous: an octet has a leading zero (read as octal by some tools)"),
                )
                .hint(format!("write the octets without leading zeros: \"{net}\"")),
            );
            return None;
        }
        let (code, message, hint) =
            if s.parse::<ipnet::Ipv6Net>().is_ok() || s.parse::<std::net::Ipv6Addr>().is_ok() {
                (
                    Code::Ipv6NotSupported,
                    format!(
                        "{path} is the IPv6 prefix {}; edgenet is IPv4 only",
                        crate::finding::excerpt(s)
                    ),
                    "use an IPv4 prefix such as \"192.168.0.0/24\"".to_string(),
                )
            } else if let Ok(ip) = s.parse::<Ipv4Addr>() {
                (
                    Code::InvalidCidr,
                    format!(
                        "{path} is {}, an address without a prefix length",
                        crate::finding::excerpt(s)
                    ),
                    format!("add the prefix length, e.g. \"{ip}/24\""),
                )
            } else {
                (
                    Code::InvalidCidr,
                    format!(
                        "{path} is {}, which is not an IPv4 CIDR",
                        crate::finding::excerpt(s)
                    ),
                    "write it as address/prefix-length, e.g. \"192.168.0.0/24\"".to_string(),
                )
            };
        self.invalid(&path, Finding::error(code, &path, message).hint(hint));
        None
    }

    pub fn mac(&mut self, obj: &Obj<'_>, key: &str) -> Option<MacAddr> {
        let (at, v) = self.value(obj, key)?;
        if let Value::String(s) = v {
            if let Ok(mac) = s.trim().parse::<MacAddr>() {
                return Some(mac);
            }
        }
        let path = at.path();
        let Value::String(s) = v else {
            self.wrong_type(
                &path,
                v,
                "a MAC address string such as \"02:00:00:00:00:01\"",
            );
            return None;
        };
        match s.trim().parse::<MacAddr>() {
            Ok(mac) => Some(mac),
            Err(e) => {
                self.invalid(
                    &path,
                    Finding::error(
                        Code::InvalidMac,
                        &path,
                        format!(
                            "{path} is {}, not a MAC address",
                            crate::finding::excerpt(s)
                        ),
                    )
                    .hint(e.to_string()),
                );
                None
            }
        }
    }

    /// One of `options` (matched case-insensitively, since PowerShell is).
    pub fn enumeration<T: Copy>(
        &mut self,
        obj: &Obj<'_>,
        key: &str,
        options: &[(&str, T)],
    ) -> Option<T> {
        let (at, v) = self.value(obj, key)?;
        if let Value::String(s) = v {
            if let Some((_, value)) = options
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(s.trim()))
            {
                return Some(*value);
            }
        }
        let path = at.path();
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let Value::String(s) = v else {
            self.wrong_type(&path, v, &format!("one of {}", names.join(", ")));
            return None;
        };
        let mut finding = Finding::error(
            Code::UnknownValue,
            &path,
            format!(
                "{path} is {}; expected one of {}",
                crate::finding::excerpt(s),
                names.join(", ")
            ),
        );
        finding = match likely_key(s, &names) {
            Some(likely) => finding.hint(format!("did you mean {likely:?}?")),
            None => finding.hint(format!("use one of {}", names.join(", "))),
        };
        self.invalid(&path, finding);
        None
    }
}

/// The known key `key` most probably misspells: equal ignoring case, or within edit distance 2
/// (for keys long enough that two edits are not most of the word).
pub(super) fn likely_key<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    if let Some(k) = known.iter().find(|k| k.eq_ignore_ascii_case(key)) {
        return Some(k);
    }
    if key.chars().count() < 4 {
        return None;
    }
    known
        .iter()
        .map(|k| {
            (
                strsim::levenshtein(&key.to_ascii_lowercase(), &k.to_ascii_lowercase()),
                *k,
            )
        })
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// `Proxy.No` holding `<local>`: Windows' proxy-bypass token (host names without a dot), not a
/// placeholder of `config new`; the proxy rule (9) says what to write instead.
fn windows_bypass(key: &str, value: &str) -> bool {
    key.eq_ignore_ascii_case("No") && value.trim().eq_ignore_ascii_case("<local>")
}
