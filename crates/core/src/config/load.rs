//! JSON text → [`Config`], with the findings of rule group 1.

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

use super::legacy;
use super::reader::{self, Obj, Reader};

/// How an MTU field's valid values are said (written out only for a finding).
macro_rules! mtu_words {
    () => {
        format_args!(
            "0 (the default) or a whole number from {} to {}",
            crate::validate::mtu::MIN_MTU,
            crate::validate::mtu::MAX_MTU
        )
    };
}
use super::*;
use crate::finding::{Code, Finding};

/// Config files larger than this are refused before parsing: a real deployment file is a few
/// kilobytes, a 10,000-machine one about 1.5 MB.
pub const MAX_CONFIG_BYTES: usize = 8 * 1024 * 1024;

/// The file cannot be used at all (`check` exits 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    TooLarge {
        size: usize,
    },
    Encoding {
        offset: usize,
    },
    /// UTF-16 (a BOM, or the zero bytes of ASCII) with a unit that is not text.
    Utf16 {
        offset: usize,
    },
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    NotAnObject {
        found: &'static str,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::TooLarge { size } => write!(
                f,
                "the config is {size} bytes; edgenet reads at most {MAX_CONFIG_BYTES} bytes (is this the right file?)"
            ),
            LoadError::Encoding { offset } => write!(
                f,
                "the config is neither UTF-8 nor Windows-1252 text (byte at offset {offset}); save it as UTF-8 (PowerShell: Set-Content -Encoding utf8)"
            ),
            LoadError::Utf16 { offset } => write!(
                f,
                "the config is not valid UTF-16 text (a lone surrogate at offset {offset}); save it again as UTF-8 (or Unicode)"
            ),
            LoadError::Syntax { line, column, message } => {
                write!(f, "the config is not valid JSON: {message} at line {line}, column {column}")
            }
            LoadError::NotAnObject { found } => write!(
                f,
                "the config must be a JSON object ({{ \"DeploymentType\": … }}), found {found}"
            ),
        }
    }
}

impl std::error::Error for LoadError {}

/// A parsed config and what rule group 1 found in it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub findings: Vec<Finding>,
    /// The JSON as written (unknown keys included), for tools that build new configs from it.
    pub source: Value,
}

const ROOT_KEYS: &[&str] = &[
    "SchemaVersion",
    "Version",
    "DeploymentType",
    "Init",
    "Network",
    "Machines",
    "Join",
    "Edgenet",
];
const ROOT_ACCEPTED: &[&str] = &[
    "Arc",
    "User",
    // The 2022 preview form (SchemaVersion 1.1 and before), mapped by `legacy::preview`.
    "DeployOptions",
    "EndUser",
    "LinuxVm",
    "WindowsVm",
    "KubernetesDistribution",
    "Azure",
    // AksEdgeDeploy's wrapper file (aide-userconfig.json).
    "AksEdgeProduct",
    "AksEdgeProductUrl",
    "AksEdgeConfigFile",
    "InstallOptions",
    "VSwitch",
    "AksEdgeConfig",
    // The Azure IoT Operations sample (aio-aksedge-config.json).
    "AioDeploy",
];
const INIT_KEYS: &[&str] = &[
    "ServiceIPRangeStart",
    "ServiceIPRangeSize",
    "ServiceIPRangeEnd",
];
const INIT_ACCEPTED: &[&str] = &["ClusterName", "KmsPlugin", "ClusterId"];
const NETWORK_KEYS: &[&str] = &[
    "ControlPlaneEndpointIp",
    "NetworkPlugin",
    "Ip4GatewayAddress",
    "Ip4PrefixLength",
    "Ip4AddressPrefix",
    "DnsServers",
    "InternetDisabled",
    "SkipAddressFreeCheck",
    "SkipDnsCheck",
    "Proxy",
    "VSwitch",
];
/// Older places of the service range, mapped by `legacy::ServiceRange`.
const NETWORK_LEGACY: &[&str] = &[
    "ServiceIPRangeStart",
    "ServiceIPRangeSize",
    "ServiceIPRangeEnd",
];
const PROXY_KEYS: &[&str] = &["Http", "Https", "No"];
const VSWITCH_KEYS: &[&str] = &["Name", "Type", "AdapterName"];
const MACHINE_KEYS: &[&str] = &[
    "MachineName",
    // edgenet's: this machine's node runtime, over Edgenet.NodeRuntime.
    "NodeRuntime",
    "NetworkConnection",
    "LinuxNode",
    "WindowsNode",
];
const MACHINE_ACCEPTED: &[&str] = &["ArcHybridComputeMachineId"];
const CONNECTION_KEYS: &[&str] = &["AdapterName", "Mtu"];
const NODE_KEYS: &[&str] = &[
    "Ip4Address",
    "MacAddress",
    "ControlPlane",
    // Sizes of a `vm` node (Edgenet.NodeRuntime); read, and without meaning for `netns`.
    "CpuCount",
    "MemoryInMB",
    "DataSizeInGB",
];
const NODE_ACCEPTED: &[&str] = &[
    "LogSizeInGB",
    "TimeoutSeconds",
    "TpmPassthrough",
    "GpuPassthrough",
    "MemoryHugePages",
    // Network fields edgenet reads only to say it does not apply them (`not-applied`).
    "SecondaryNetworks",
    "GlobalIpv4Address",
    // IPv6 is not configured by edgenet: a value is warned (`not-applied`), see `read_node`.
    "GlobalIpv6Address",
    // Older files kept the MTU on the node; read as NetworkConnection.Mtu.
    "Mtu",
];
/// Node fields that change the network but that edgenet does not apply yet.
const NODE_NOT_APPLIED: &[(&str, &str)] = &[
    (
        "SecondaryNetworks",
        "extra network interfaces of the node (Multus) are not created",
    ),
    (
        "GlobalIpv4Address",
        "the node's global address is not configured",
    ),
];
const EDGENET_KEYS: &[&str] = &[
    "Distribution",
    "NodeRuntime",
    "SwitchName",
    "MachineName",
    "PortForwards",
    "VmImage",
    "VmKernel",
    "VmInitrd",
    "WindowsVmImage",
];
const FORWARD_KEYS: &[&str] = &["Protocol", "HostPort", "Node", "NodePort"];

/// Whether `key` names a top-level section of a deployment config as the loader reads it (any
/// case): for telling a config edgenet recorded from another JSON file of the same name.
pub fn is_root_key(key: &str) -> bool {
    ROOT_KEYS
        .iter()
        .chain(ROOT_ACCEPTED)
        .any(|k| k.eq_ignore_ascii_case(key))
}

/// `v` with every key that is a schema key in another case spelt as the schema spells it
/// (`network.dnsServers` → `Network.DnsServers`), for tools that build new configs from a
/// user's file.
pub fn with_canonical_keys(v: &Value) -> Value {
    let lists: &[&[&str]] = &[
        ROOT_KEYS,
        ROOT_ACCEPTED,
        INIT_KEYS,
        INIT_ACCEPTED,
        NETWORK_KEYS,
        NETWORK_LEGACY,
        PROXY_KEYS,
        VSWITCH_KEYS,
        MACHINE_KEYS,
        MACHINE_ACCEPTED,
        CONNECTION_KEYS,
        NODE_KEYS,
        NODE_ACCEPTED,
        EDGENET_KEYS,
        FORWARD_KEYS,
    ];
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = lists
                        .iter()
                        .flat_map(|l| l.iter())
                        .find(|c| c.eq_ignore_ascii_case(k))
                        .map_or_else(|| k.clone(), |c| (*c).to_string());
                    (key, with_canonical_keys(v))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(with_canonical_keys).collect()),
        other => other.clone(),
    }
}

/// The JSON value of a config file's bytes, read as [`load`] reads them (a BOM, UTF-16,
/// Windows-1252, comments and trailing commas accepted), whatever the value is: for a file
/// edgenet recorded that an operator may have edited in a Windows editor.
pub fn parse_text(bytes: &[u8]) -> Result<Value, LoadError> {
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(LoadError::TooLarge { size: bytes.len() });
    }
    let (text, _) = decode(bytes)?;
    let (text, _) = without_eof_mark(&text);
    parse_relaxed(bytes, text).map(|((value, _), _)| value)
}

/// `text` without the DOS end-of-file mark, one Ctrl-Z (0x1A) as its last character (after
/// the JSON and any white space; white space after it too, an editor's final line break),
/// and whether it had one. `copy /b`, old DOS editors and some
/// Windows tools still append it; it ends the text by their convention, and is not data. Two
/// of them, or one before other text, are not that mark: they stay and are named by the
/// syntax error (B26 F5).
fn without_eof_mark(text: &str) -> (&str, bool) {
    match text.trim_end().strip_suffix('\u{1a}') {
        Some(rest) if !rest.trim_end().ends_with('\u{1a}') => (rest, true),
        _ => (text, false),
    }
}

/// The JSON of `text` (decoded from `bytes`), and which extensions of strict JSON it has
/// ([`relax`]). Strict JSON, as almost every file, is parsed as it is: it has neither a comment
/// nor a trailing comma outside its strings, which is all that `relax` blanks. Only a file that
/// strict JSON refuses is relaxed and parsed again; its syntax error, if it still has one, is
/// that of the relaxed text, as ever.
#[allow(clippy::type_complexity)]
fn parse_relaxed(
    bytes: &[u8],
    text: &str,
) -> Result<((Value, Vec<super::json::Duplicate>), Vec<&'static str>), LoadError> {
    let strict_error = match super::json::parse(text) {
        Ok(parsed) => return Ok((parsed, Vec::new())),
        Err(e) => e,
    };
    let (relaxed, what, open) = relax_noting_open(text);
    if what.is_empty() {
        return Err(syntax_error(bytes, text, text, &strict_error, false));
    }
    let parsed = super::json::parse(&relaxed).map_err(|e| {
        let mut error = syntax_error(bytes, text, &relaxed, &e, what.contains(&"comments"));
        if let (Some(start), LoadError::Syntax { message, .. }) = (open, &mut error) {
            // B24 F6: an unclosed `/*` takes the rest of the file; name where it starts.
            let (line, column) = line_column(text, start);
            message.push_str(&format!(
                " (the /* comment at line {line}, column {column} is never closed with */, so the rest of the file is in it)"
            ));
        }
        error
    })?;
    Ok((parsed, what))
}

/// Parses a deployment file. Problems with individual fields become findings (all of them);
/// only a file that is not a JSON object at all is a [`LoadError`].
pub fn load(bytes: &[u8]) -> Result<Loaded, LoadError> {
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(LoadError::TooLarge { size: bytes.len() });
    }
    let (text, ansi) = decode(bytes)?;
    let (text, eof_mark) = without_eof_mark(&text);
    let ((value, duplicates), relaxed) = parse_relaxed(bytes, text)?;
    let Value::Object(map) = &value else {
        return Err(LoadError::NotAnObject {
            found: match value {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Bool(_) => "a boolean",
                _ => "null",
            },
        });
    };
    let root = Obj::root(map);
    let mut r = Reader::default();
    if let Some(offset) = ansi {
        // B24 F6: its own code, not `legacy-field` (an older form of a field).
        let byte = bytes.get(offset).copied().unwrap_or_default();
        r.findings.push(
            Finding::notice(
                Code::FileEncoding,
                "",
                format!("the file is not UTF-8 (byte 0x{byte:02X} at offset {offset} is not): read as Windows-1252 (Windows PowerShell 5.1's Set-Content default)"),
            )
            .hint("save it as UTF-8 (Set-Content -Encoding utf8) so that every tool reads it alike"),
        );
    }
    if eof_mark {
        r.findings.push(
            Finding::notice(
                Code::FileEncoding,
                "",
                "the file ends with a Ctrl-Z (0x1A), the DOS end-of-file mark (`copy /b` and some Windows tools append it): read without it",
            )
            .hint("remove the last byte (editors show nothing there; `truncate -s -1 FILE`) so that every tool reads the file; strict JSON parsers refuse it"),
        );
    }
    for what in relaxed {
        r.findings.push(
            Finding::notice(
                Code::JsonExtension,
                "",
                format!("the file has {what}, which strict JSON does not allow: read as PowerShell 7's ConvertFrom-Json reads them, though other tools refuse the file (Windows PowerShell 5.1's ConvertFrom-Json, which AKS Edge Essentials' own cmdlets run on, among them)"),
            )
            .hint(format!("remove the {what} so that every tool reads the file")),
        );
    }
    for d in duplicates {
        let path = &d.path;
        let finding = if d.exact {
            Finding::error(
                Code::DuplicateKey,
                path,
                format!(
                    "{path} is written twice in the same object; which value applies is ambiguous"
                ),
            )
            .hint("keep one of the two")
        } else {
            Finding::error(
                Code::DuplicateKey,
                path,
                format!(
                    "{path} and {:?} differ only in case; PowerShell's ConvertFrom-Json refuses such a file",
                    d.first
                ),
            )
            .hint("keep one of the two (keys are case-insensitive)")
        };
        r.invalid(path, finding);
    }
    let config = read_file(&mut r, &root);
    // Later rules ask by canonical path whether a field was already found invalid.
    let mut invalid = r.invalid.clone();
    for p in &r.invalid {
        for (canon, written) in &r.aliases {
            if let Some(rest) = p.strip_prefix(written.as_str()) {
                if rest.is_empty() || rest.starts_with(['.', '[']) {
                    invalid.insert(format!("{canon}{rest}"));
                }
            }
        }
    }
    Ok(Loaded {
        config: Config {
            invalid_paths: invalid,
            source_paths: r.aliases,
            ..config
        },
        findings: grouped_key_case(r.findings),
        source: value,
    })
}

/// More key-case notices than this become one (a config written in lower case has dozens).
const KEY_CASE_SINGLY: usize = 5;

/// Many `key-case` notices as one, at the first one's path, naming a few keys (B21 N9).
fn grouped_key_case(findings: Vec<Finding>) -> Vec<Finding> {
    let is_case = |f: &Finding| f.code == Code::KeyCase;
    if findings.iter().filter(|f| is_case(f)).count() <= KEY_CASE_SINGLY {
        return findings;
    }
    // In the first one's place.
    let at = findings.iter().take_while(|f| !is_case(f)).count();
    let (case, mut rest): (Vec<Finding>, Vec<Finding>) =
        findings.into_iter().partition(|f| is_case(f));
    let named: Vec<&str> = case.iter().take(3).map(|f| f.path.as_str()).collect();
    let grouped = Finding::notice(
        Code::KeyCase,
        &case[0].path,
        format!(
            "{} keys are written in another case than AKS Edge Essentials spells them ({}, and {} more); they are read case-insensitively, as in PowerShell",
            case.len(),
            named.join(", "),
            case.len() - named.len()
        ),
    )
    .hint("spell the keys as New-AksEdgeConfig writes them (`edgenet config new` writes every key)");
    rest.insert(at, grouped);
    rest
}

/// UTF-8 (a leading BOM dropped), or UTF-16 with a BOM, or else Windows-1252 (`Some(offset)`
/// of the first byte that is not UTF-8: Windows PowerShell 5.1's `Set-Content` writes the ANSI
/// code page): Windows PowerShell 5.1's `Out-File` writes UTF-16LE, and files come from AKS
/// Edge Essentials hosts.
fn decode(bytes: &[u8]) -> Result<(Cow<'_, str>, Option<usize>), LoadError> {
    let utf16 = |le: bool| -> Result<String, LoadError> {
        let units = bytes[2..].chunks(2).map(|c| {
            let pair = [c[0], *c.get(1).unwrap_or(&0)];
            if le {
                u16::from_le_bytes(pair)
            } else {
                u16::from_be_bytes(pair)
            }
        });
        char::decode_utf16(units)
            .enumerate()
            .map(|(i, c)| c.map_err(|_| LoadError::Utf16 { offset: 2 + 2 * i }))
            .collect()
    };
    match bytes {
        [0xff, 0xfe, ..] => utf16(true).map(|t| (Cow::Owned(t), None)),
        [0xfe, 0xff, ..] => utf16(false).map(|t| (Cow::Owned(t), None)),
        // UTF-16LE without a BOM (`[IO.File]::WriteAllText(…, [Text.Encoding]::Unicode)` is
        // with one, but editors sometimes drop it): JSON starts with an ASCII character.
        [c, 0, ..] if *c != 0 && c.is_ascii() => {
            let mut with_bom = vec![0xff, 0xfe];
            with_bom.extend_from_slice(bytes);
            decode(&with_bom).map(|(t, ansi)| (Cow::Owned(t.into_owned()), ansi))
        }
        _ => {
            let (bom, bytes) = match bytes.strip_prefix(&[0xef, 0xbb, 0xbf]) {
                Some(rest) => (3, rest),
                None => (0, bytes),
            };
            match std::str::from_utf8(bytes) {
                Ok(text) => Ok((Cow::Borrowed(text), None)),
                Err(e) => windows_1252(bytes).map(|t| (Cow::Owned(t), Some(bom + e.valid_up_to()))),
            }
        }
    }
}

/// Windows-1252 text; the five bytes it leaves undefined are refused.
fn windows_1252(bytes: &[u8]) -> Result<String, LoadError> {
    const HIGH: [Option<char>; 32] = [
        Some('€'),
        None,
        Some('‚'),
        Some('ƒ'),
        Some('„'),
        Some('…'),
        Some('†'),
        Some('‡'),
        Some('ˆ'),
        Some('‰'),
        Some('Š'),
        Some('‹'),
        Some('Œ'),
        None,
        Some('Ž'),
        None,
        None,
        Some('‘'),
        Some('’'),
        Some('“'),
        Some('”'),
        Some('•'),
        Some('–'),
        Some('—'),
        Some('˜'),
        Some('™'),
        Some('š'),
        Some('›'),
        Some('œ'),
        None,
        Some('ž'),
        Some('Ÿ'),
    ];
    bytes
        .iter()
        .enumerate()
        .map(|(i, &b)| match b {
            0x80..=0x9f => HIGH[usize::from(b - 0x80)].ok_or(LoadError::Encoding { offset: i }),
            _ => Ok(char::from(b)),
        })
        .collect()
}

/// What [`relax`] took out, as its notice names it.
fn relaxed(commas: bool, comments: bool) -> Vec<&'static str> {
    let mut what = Vec::new();
    if commas {
        what.push("trailing commas");
    }
    if comments {
        what.push("comments");
    }
    what
}

/// `text` with `//` and `/* */` comments and trailing commas (before `}` or `]`) blanked out,
/// keeping every line and byte offset, and which of the two it had. Each byte of a comment
/// becomes one space (a line break stays), so that a position in the result is the same byte
/// of `text`, whose characters [`char_column`] counts for an error's column; `text` itself
/// (not a copy) when it has neither, as almost every file.
///
/// The scan goes by bytes: everything it looks for is ASCII, and no byte of a multi-byte UTF-8
/// character is.
#[cfg(test)]
fn relax(text: &str) -> (Cow<'_, str>, Vec<&'static str>) {
    let (relaxed, what, _) = relax_noting_open(text);
    (relaxed, what)
}

/// [`relax`], and where a `/* */` comment that is never closed starts (its byte offset).
fn relax_noting_open(text: &str) -> (Cow<'_, str>, Vec<&'static str>, Option<usize>) {
    let bytes = text.as_bytes();
    let len = bytes.len();
    // What is written so far, up to `copied` of `text`; allocated at the first change.
    let mut out: Option<String> = None;
    let mut copied = 0;
    // `text[from..to]` blanked: a space for each byte but a line break.
    let blank = |out: &mut Option<String>, copied: &mut usize, from: usize, to: usize| {
        let o = out.get_or_insert_with(|| String::with_capacity(len));
        o.push_str(&text[*copied..from]);
        for &b in &bytes[from..to] {
            o.push(if b == b'\n' { '\n' } else { ' ' });
        }
        *copied = to;
    };
    let (mut comments, mut commas) = (false, false);
    let mut open = None;
    let mut i = 0;
    while i < len {
        // To the next byte that matters outside a string.
        match bytes[i..]
            .iter()
            .position(|&b| matches!(b, b'"' | b'/' | b','))
        {
            Some(p) => i += p,
            None => break,
        }
        match bytes[i] {
            b'"' => {
                // Past the string: to its closing quote, a backslash escaping the byte after it.
                i += 1;
                loop {
                    let next = bytes
                        .get(i..)
                        .and_then(|rest| rest.iter().position(|&b| b == b'"' || b == b'\\'));
                    let Some(p) = next else {
                        // Not closed: the rest of the file is the string.
                        i = len;
                        break;
                    };
                    i += p;
                    if bytes[i] == b'"' {
                        break;
                    }
                    i += 2;
                }
                if i >= len {
                    break;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                comments = true;
                let end = line_end(bytes, i);
                blank(&mut out, &mut copied, i, end);
                i = end;
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                comments = true;
                let end = block_end(bytes, i + 2);
                if !bytes[..end].ends_with(b"*/") || end < i + 4 {
                    open = Some(i);
                }
                blank(&mut out, &mut copied, i, end);
                i = end;
                continue;
            }
            b',' => {
                // A comma followed (past blanks and comments) by a closing bracket.
                let mut j = i + 1;
                while j < len {
                    match bytes[j] {
                        b'/' => match bytes.get(j + 1) {
                            Some(b'/') => j = line_end(bytes, j),
                            Some(b'*') => j = block_end(bytes, j + 2),
                            _ => break,
                        },
                        b if b.is_ascii() => {
                            if !char::from(b).is_whitespace() {
                                break;
                            }
                            j += 1;
                        }
                        _ => match text[j..].chars().next() {
                            Some(w) if w.is_whitespace() => j += w.len_utf8(),
                            _ => break,
                        },
                    }
                }
                if matches!(bytes.get(j), Some(b'}' | b']')) {
                    blank(&mut out, &mut copied, i, i + 1);
                    commas = true;
                }
            }
            _ => {}
        }
        i += 1;
    }
    let what = relaxed(commas, comments);
    match out {
        None => (Cow::Borrowed(text), what, open),
        Some(mut out) => {
            out.push_str(&text[copied..]);
            (Cow::Owned(out), what, open)
        }
    }
}

/// The 1-based line and column (counting characters, as an editor does) of byte `offset` of
/// `text`. A line ends at LF, CRLF or a lone CR (classic Mac), as editors take them (B25 F5).
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset];
    let is_break = |i: usize| match before[i] {
        b'\n' => true,
        b'\r' => text.as_bytes().get(i + 1) != Some(&b'\n'),
        _ => false,
    };
    let line_start = (0..before.len()).rposition(is_break).map_or(0, |p| p + 1);
    let line = 1 + (0..before.len()).filter(|&i| is_break(i)).count();
    (
        line,
        char_column(&text[line_start..], offset - line_start + 1),
    )
}

/// The byte offset in `text` of serde_json's position (1-based `line`, counting LF only, and
/// byte `column`, 0 at a line's very start before any byte).
fn serde_offset(text: &str, line: usize, column: usize) -> usize {
    let line_start = match line.checked_sub(2) {
        None => 0,
        Some(n) => text
            .bytes()
            .enumerate()
            .filter(|(_, b)| *b == b'\n')
            .nth(n)
            .map_or(text.len(), |(i, _)| i + 1),
    };
    (line_start + column.saturating_sub(1)).min(text.len())
}

/// The 1-based column, in characters as an editor counts them, of the byte at 1-based column
/// `byte_column` of `line` (the text from a line's start: serde_json counts bytes, B24 F5). A
/// byte inside a multi-byte character is that character's column; past the line's end, the
/// column after its last character; 0 (serde_json's column at a line's very start, before any
/// byte) is column 1, where the line's first character goes. Only for an error: nothing is
/// counted while a file is read.
fn char_column(line: &str, byte_column: usize) -> usize {
    let index = byte_column.saturating_sub(1);
    let line = line.split(['\n', '\r']).next().unwrap_or_default();
    let mut start = index.min(line.len());
    while !line.is_char_boundary(start) {
        start -= 1;
    }
    line[..start].chars().count() + 1
}

/// Where the `//` comment at `from` ends: at the line break (not included; LF, CRLF or a
/// lone CR) or the end.
fn line_end(bytes: &[u8], from: usize) -> usize {
    bytes[from..]
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .map_or(bytes.len(), |p| from + p)
}

/// Where the `/* */` comment whose text starts at `from` ends: past its `*/`, or the end.
fn block_end(bytes: &[u8], from: usize) -> usize {
    let mut i = from;
    while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
        i += 1;
    }
    (i + 2).min(bytes.len())
}

/// A syntax error, naming what an operator cannot see at the position (B21 N9): a UTF-32 file
/// (PowerShell's `-Encoding UTF32`), or a typographic quote pasted from a document.
/// `text` is what serde_json read: `original`, or the file with its comments blanked
/// (`commented`), byte for byte at the same offsets. The column counts `original`'s characters.
fn syntax_error(
    bytes: &[u8],
    original: &str,
    text: &str,
    e: &serde_json::Error,
    commented: bool,
) -> LoadError {
    let mut message = syntax_message(e);
    if text.trim().is_empty() {
        // B23 F7: "EOF while parsing a value" for a file with nothing in it.
        message = if text.is_empty() {
            "the file is empty".to_string()
        } else if commented {
            // B24 F6: not "only white space" for a file holding a comment.
            "the file holds no JSON, only comments and white space".to_string()
        } else {
            "the file holds only white space".to_string()
        };
        message.push_str(
            " (a config is one JSON object: `edgenet config new -f FILE` writes the default)",
        );
    } else if text.starts_with('\u{feff}') {
        // The first byte-order mark is dropped by [`decode`]; a second one (a file saved with
        // a BOM by a tool that added one to text that had one) is not JSON.
        message.push_str(
            " (the file starts with a second byte-order mark, U+FEFF, after the first: save it as UTF-8 without them)",
        );
    } else if let Some(which) = utf32(bytes) {
        message.push_str(&format!(
            " (the file is UTF-32{which} text; save it as UTF-8: PowerShell Set-Content -Encoding utf8)"
        ));
    } else if utf16_be_without_bom(bytes) {
        message.push_str(
            " (the file is UTF-16 BE text without a byte-order mark; save it as UTF-8: PowerShell Set-Content -Encoding utf8, or as UTF-16 with its BOM)",
        );
    } else if let Some(after) = after_the_document(text, e) {
        message = after;
    } else if let Some(c) = typographic_quote(text, e.line(), e.column()) {
        message.push_str(&format!(
            " (the character there is {c} U+{:04X}, a typographic quote; JSON needs the straight quote \")",
            c as u32
        ));
    }
    // Where serde_json stopped, counted in `original` (a lone CR is a line break there too).
    // The input ended: the position is after its last byte (serde_json's column names the
    // last byte read, a lone CR on the last line included).
    let offset = match e.classify() {
        serde_json::error::Category::Eof => text.len(),
        _ => serde_offset(text, e.line(), e.column()),
    };
    let (line, column) = line_column(original, offset);
    LoadError::Syntax {
        line,
        column,
        message,
    }
}

/// serde_json's "trailing characters" said with what they are (B26 F5): a Ctrl-Z (the DOS
/// end-of-file mark, taken alone as the file's last character, see [`without_eof_mark`]),
/// NUL bytes (a file padded with zeros: preallocated, or cut by a crash), another invisible
/// control character, or visible text after the document.
fn after_the_document(text: &str, e: &serde_json::Error) -> Option<String> {
    if e.classify() != serde_json::error::Category::Syntax
        || !e.to_string().starts_with("trailing characters")
    {
        return None;
    }
    let rest = text.get(serde_offset(text, e.line(), e.column())..)?;
    let c = rest.chars().next()?;
    // The position follows: "…, starting at line L, column C".
    let remove = "remove everything after the document's closing }, starting";
    Some(match c {
        '\u{1a}' => {
            let n = rest.chars().filter(|&c| c == '\u{1a}').count();
            let others = rest.chars().any(|c| c != '\u{1a}' && !c.is_whitespace());
            let what = if n == 1 {
                "a Ctrl-Z (0x1A) character".to_string()
            } else {
                format!("{n} Ctrl-Z (0x1A) characters")
            };
            let tail = if others { " and more text" } else { "" };
            format!(
                "{what}{tail} after the JSON document, invisible in editors (a single Ctrl-Z at the very end is read as the DOS end-of-file mark, nothing else); {remove}"
            )
        }
        '\0' => {
            let n = rest.chars().take_while(|&c| c == '\0').count();
            let what = if n == 1 {
                "a NUL byte (0x00)".to_string()
            } else {
                format!("{n} NUL bytes (0x00)")
            };
            format!(
                "{what} after the JSON document, invisible in editors (a file padded with zeros: preallocated, or cut short by a crash while it was written); {remove}"
            )
        }
        c if c.is_control() || c == '\u{feff}' || c == '\u{200b}' => format!(
            "the invisible character U+{:04X} after the JSON document; {remove}",
            c as u32
        ),
        c => format!(
            "more text after the JSON document, starting with {c:?} (a config is one JSON object); {remove}"
        ),
    })
}

/// `Some(" LE")`/`Some(" BE")` when `bytes` look UTF-32: its BOM, or JSON's first ASCII
/// character followed (LE) or preceded (BE) by three zero bytes.
fn utf32(bytes: &[u8]) -> Option<&'static str> {
    match bytes {
        [0xff, 0xfe, 0, 0, ..] => Some(" LE"),
        [0, 0, 0xfe, 0xff, ..] => Some(" BE"),
        [c, 0, 0, 0, ..] if *c != 0 && c.is_ascii() => Some(" LE"),
        [0, 0, 0, c, ..] if *c != 0 && c.is_ascii() => Some(" BE"),
        _ => None,
    }
}

/// Whether `bytes` look UTF-16 BE without its BOM: JSON's first ASCII character after one
/// zero byte (with a BOM, or LE without one, the file is read as UTF-16; UTF-32 is named first).
fn utf16_be_without_bom(bytes: &[u8]) -> bool {
    matches!(bytes, [0, c, ..] if *c != 0 && c.is_ascii())
}

/// A typographic quote at (or just before) `line`/`column` (serde_json's, 1-based; the column
/// counts bytes) of `text`.
fn typographic_quote(text: &str, line: usize, column: usize) -> Option<char> {
    const QUOTES: [char; 8] = [
        '\u{201C}', '\u{201D}', '\u{201E}', '\u{2018}', '\u{2019}', '\u{201A}', '\u{00AB}',
        '\u{00BB}',
    ];
    let l = text.lines().nth(line.checked_sub(1)?)?;
    let end = l
        .char_indices()
        .map(|(i, c)| i + c.len_utf8())
        .find(|&i| i >= column)
        .unwrap_or(l.len());
    l[..end].chars().rev().take(2).find(|c| QUOTES.contains(c))
}

fn syntax_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    // serde_json appends " at line L column C"; we print the position ourselves.
    match full.rfind(" at line ") {
        Some(i) => full[..i].to_string(),
        None => full,
    }
}

/// Top-level keys that make a file a deployment config (or AksEdgeDeploy's user config, which
/// holds or names one). `SchemaVersion`, `Version`, `Arc`, … alone configure nothing.
const CONFIG_KEYS: &[&str] = &[
    "DeploymentType",
    "Init",
    "Network",
    "Machines",
    "Join",
    "Edgenet",
    "DeployOptions",
    "LinuxVm",
    "WindowsVm",
    "KubernetesDistribution",
    "AksEdgeConfig",
    "AksEdgeConfigFile",
];

/// The whole file: a deployment config, or AksEdgeDeploy's user config with the deployment
/// config inline in `AksEdgeConfig`, read in place (findings at `AksEdgeConfig.…`).
fn read_file(r: &mut Reader, root: &Obj<'_>) -> Config {
    if let Some(key) = root.key("AksEdgeConfig") {
        match &root.map[key] {
            Value::Object(inner) if !inner.is_empty() => {
                r.check_keys_warn_unknown(
                    root,
                    &["SchemaVersion", "Version", "AksEdgeConfig"],
                    ROOT_ACCEPTED,
                );
                let obj = Obj::new(key.to_string(), String::new(), inner);
                for k in ROOT_KEYS {
                    r.alias(*k, obj.at(k));
                }
                let mut config = read_config(r, &obj);
                legacy::product_distribution(r, root, &mut config);
                r.findings.push(
                    Finding::notice(
                        Code::LegacyField,
                        key,
                        format!("this is an AksEdgeDeploy user config; its inline deployment config {key} is read"),
                    )
                    .hint(format!("edgenet reads {key} as the deployment config; the other top-level keys are AksEdgeDeploy's")),
                );
                return config;
            }
            Value::Object(_) | Value::Null => {}
            other => {
                let path = root.at("AksEdgeConfig");
                r.invalid(
                    &path,
                    Finding::error(
                        Code::WrongType,
                        &path,
                        format!("{path} is {}, expected an object (the deployment config)", super::reader::show(other)),
                    )
                    .hint(format!("write the deployment config as the object {path}, or name its file in AksEdgeConfigFile")),
                );
            }
        }
    }
    if !root.map.is_empty() && CONFIG_KEYS.iter().all(|k| root.key(k).is_none()) {
        let found: Vec<String> = root
            .map
            .keys()
            .take(8)
            .map(|k| crate::finding::excerpt(k))
            .collect();
        let more = if root.map.len() > 8 { ", …" } else { "" };
        r.invalid(
            "",
            Finding::error(
                Code::NotAConfig,
                "",
                format!(
                    "this is not an AKS Edge Essentials deployment config: none of its top-level keys ({}{more}) is DeploymentType, Network, Machines, Init, Join, Edgenet or a preview key",
                    found.join(", ")
                ),
            )
            .hint("give the file New-AksEdgeConfig wrote (aksedge-config.json), or `edgenet config new` to write one"),
        );
    }
    read_config(r, root)
}

/// The `SchemaVersion`s AKS Edge Essentials releases wrote (research notes, aks-ee.md §1.1:
/// the repo sample's history, preview 1.1 to 1.16; 1.0, the first preview's).
pub const KNOWN_SCHEMA_VERSIONS: &[&str] = &[
    "1.0", "1.1", "1.5", "1.6", "1.8", "1.9", "1.13", "1.14", "1.15", "1.16",
];

/// Any other `SchemaVersion` is read as the current schema, with a warning: a newer release
/// may have moved a network field edgenet would then not see.
fn schema_version(r: &mut Reader, root: &Obj<'_>) {
    let Some(v) = root.get("SchemaVersion") else {
        return;
    };
    let path = r.at(root, "SchemaVersion");
    let written = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        other => super::reader::show(other),
    };
    if KNOWN_SCHEMA_VERSIONS.contains(&written.as_str()) {
        return;
    }
    // AksEdgeDeploy's user config (it names the product or the deployment config) numbers its
    // own schema (1.0–1.3…), not the deployment config's (B23 F7): not unknown.
    if ["AksEdgeProduct", "AksEdgeConfigFile", "AksEdgeConfig"]
        .iter()
        .any(|k| root.get(k).is_some())
    {
        return;
    }
    r.findings.push(
        Finding::warning(
            Code::UnknownSchemaVersion,
            &path,
            format!(
                "{path} is {}, not a version edgenet knows ({}): read as the current schema ({}); a field this version moved or added would go unseen",
                super::reader::show(v),
                KNOWN_SCHEMA_VERSIONS.join(", "),
                KNOWN_SCHEMA_VERSIONS[KNOWN_SCHEMA_VERSIONS.len() - 1]
            ),
        )
        .hint(format!(
            "check the file's network fields against `edgenet config new`, or write {path} as one of the known versions, e.g. \"{}\"",
            KNOWN_SCHEMA_VERSIONS[KNOWN_SCHEMA_VERSIONS.len() - 1]
        )),
    );
}

fn read_config(r: &mut Reader, root: &Obj<'_>) -> Config {
    r.check_keys_warn_unknown(root, ROOT_KEYS, ROOT_ACCEPTED);
    schema_version(r, root);
    let deployment_type = r.enumeration(
        root,
        "DeploymentType",
        &[
            ("SingleMachineCluster", DeploymentType::SingleMachineCluster),
            ("ScalableCluster", DeploymentType::ScalableCluster),
        ],
    );
    let mut config = Config {
        deployment_type: deployment_type.unwrap_or_default(),
        ..Config::default()
    };
    let mut range = legacy::ServiceRange::default();
    if let Some(init) = r.object(root, "Init") {
        r.check_keys(&init, INIT_KEYS, INIT_ACCEPTED);
        range.read(r, &init, true);
    }
    if let Some(net) = r.object(root, "Network") {
        read_network(r, &net, &mut config);
        range.read(r, &net, false);
    }
    // One machine written as the object itself, not in an array: what Windows PowerShell
    // 5.1's `ConvertFrom-Json | ConvertTo-Json` makes of a one-element array (PowerShell
    // issues #2448, #2635). Read as that one machine, said.
    let unwrapped;
    let machines = match root.raw("Machines") {
        Some(one @ Value::Object(_)) => {
            let path = r.at(root, "Machines");
            r.findings.push(
                Finding::notice(
                    Code::PowershellShape,
                    &path,
                    format!("{path} is one machine written as an object, not an array: read as [that machine], as PowerShell's ConvertTo-Json writes a one-element array"),
                )
                .hint(format!("write {path} as an array ([{{…}}]); in PowerShell, ConvertTo-Json -InputObject @($machines) or @() around the value keeps it one")),
            );
            unwrapped = vec![one.clone()];
            Some(&unwrapped)
        }
        _ => r.array(root, "Machines"),
    };
    let one_object = matches!(root.raw("Machines"), Some(Value::Object(_)));
    match machines {
        Some(items) if !items.is_empty() => {
            let machines_at = root.at("Machines");
            for (i, item) in items.iter().enumerate() {
                // As written: `Machines` itself when it was the one machine.
                let path = if one_object {
                    machines_at.clone()
                } else {
                    reader::index(&machines_at, i)
                };
                match item {
                    Value::Object(map) => {
                        let obj = Obj::new(path, reader::index("Machines", i), map);
                        let machine = read_machine(r, &obj);
                        config.machines.push(machine);
                    }
                    other => {
                        r.invalid(
                            &path,
                            Finding::error(
                                Code::WrongType,
                                &path,
                                format!(
                                    "{path} is {}, expected an object",
                                    super::reader::show(other)
                                ),
                            ),
                        );
                        config.machines.push(Machine::default());
                    }
                }
            }
        }
        other => {
            config.machines_empty = other.is_some_and(|items| items.is_empty());
            config.machines_implied = true;
            config.machines.push(Machine {
                linux_node: Some(Node::default()),
                linux_node_implied: true,
                ..Machine::default()
            });
        }
    }
    match root.raw("Join") {
        None | Some(Value::Null) => {}
        Some(Value::Object(_)) => config.join = true,
        Some(other) => {
            let path = root.at("Join");
            r.invalid(
                &path,
                Finding::error(
                    Code::WrongType,
                    &path,
                    format!(
                        "{path} is {}, expected an object",
                        super::reader::show(other)
                    ),
                ),
            )
        }
    }
    if let Some(ext) = r.object(root, "Edgenet") {
        read_edgenet(r, &ext, &mut config.edgenet);
    }
    let preview = legacy::preview(r, root, deployment_type.is_some(), &mut config);
    // The range is judged once the deployment type is known (the preview form may give it).
    let single_preview = preview && !config.is_scalable();
    range.apply(r, &mut config, single_preview);
    if single_preview {
        legacy::drop_single_machine_statics(r, &mut config);
    }
    legacy::apply(r, &mut config);
    config
}

fn read_network(r: &mut Reader, net: &Obj<'_>, config: &mut Config) {
    r.check_keys_warn_unknown(net, NETWORK_KEYS, NETWORK_LEGACY);
    let n = &mut config.network;
    n.control_plane_endpoint_ip = r.ipv4(net, "ControlPlaneEndpointIp");
    n.network_plugin = r.enumeration(
        net,
        "NetworkPlugin",
        &[
            ("flannel", NetworkPlugin::Flannel),
            ("calico", NetworkPlugin::Calico),
        ],
    );
    n.ip4_gateway_address = r.ipv4(net, "Ip4GatewayAddress");
    n.ip4_prefix_length = r.uint_in(
        net,
        "Ip4PrefixLength",
        format_args!("a whole number from 1 to 31"),
    );
    n.ip4_address_prefix = r.cidr(net, "Ip4AddressPrefix");
    n.dns_servers = r.ipv4_list(net, "DnsServers");
    n.internet_disabled = r.bool(net, "InternetDisabled").unwrap_or(false);
    n.skip_address_free_check = r.bool(net, "SkipAddressFreeCheck").unwrap_or(false);
    n.skip_dns_check = r.bool(net, "SkipDnsCheck").unwrap_or(false);
    if let Some(proxy) = r.object(net, "Proxy") {
        r.check_keys(&proxy, PROXY_KEYS, &[]);
        n.proxy.http = r.string(&proxy, "Http");
        n.proxy.https = r.string(&proxy, "Https");
        n.proxy.no = r.string(&proxy, "No");
    }
    if let Some(vswitch) = r.object(net, "VSwitch") {
        r.check_keys(&vswitch, VSWITCH_KEYS, &[]);
        n.legacy_vswitch = Some(LegacyVSwitch {
            name: r.string(&vswitch, "Name"),
            kind: r.string(&vswitch, "Type"),
            adapter_name: r.string(&vswitch, "AdapterName"),
            path: vswitch.path.clone(),
        });
    }
}

/// `MachineName`, with capitals read in lower case (a notice): Windows' `COMPUTERNAME` is
/// upper-case, AKS Edge Essentials files carry it as it is, and nodes are named in lower case
/// (`<machine>-ledge`), as Kubernetes node names must be. A name that lower case does not mend
/// is kept as written, for the `invalid-name` error.
fn machine_name(r: &mut Reader, obj: &Obj<'_>) -> Option<String> {
    let name = r.string(obj, "MachineName")?;
    if !name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some(name);
    }
    let lower = name.to_ascii_lowercase();
    if lower == name || crate::validate::machine_name_problem(&lower).is_some() {
        return Some(name);
    }
    let path = r.at(obj, "MachineName");
    r.findings.push(
        Finding::notice(
            Code::MachineNameCase,
            &path,
            format!(
                "{path} is {name:?}; read as {lower:?} (node names are lower-case: {lower}-ledge)"
            ),
        )
        .hint(format!("write it as \"{lower}\"")),
    );
    Some(lower)
}

pub(super) fn read_machine(r: &mut Reader, m: &Obj<'_>) -> Machine {
    r.check_keys(m, MACHINE_KEYS, MACHINE_ACCEPTED);
    let mut machine = Machine {
        machine_name: machine_name(r, m),
        node_runtime: r.enumeration(
            m,
            "NodeRuntime",
            &[("netns", NodeRuntime::Netns), ("vm", NodeRuntime::Vm)],
        ),
        ..Machine::default()
    };
    if let Some(conn) = r.object(m, "NetworkConnection") {
        r.check_keys_warn_unknown(&conn, CONNECTION_KEYS, &[]);
        machine.adapter_name = r.string(&conn, "AdapterName");
        machine.mtu = r
            .uint_in(&conn, "Mtu", mtu_words!())
            .filter(|&mtu| mtu != 0);
    }
    for (key, linux) in [("LinuxNode", true), ("WindowsNode", false)] {
        let Some(n) = r.object(m, key) else { continue };
        let node = read_node(r, &n);
        node_mtu(r, &n, m.canon(), &mut machine);
        if linux {
            machine.linux_node = Some(node);
        } else {
            machine.windows_node = Some(node);
        }
    }
    let wrote_a_node = ["LinuxNode", "WindowsNode"]
        .iter()
        .any(|k| m.key(k).is_some());
    if machine.linux_node.is_none() && !wrote_a_node {
        machine.linux_node = Some(Node::default());
        machine.linux_node_implied = true;
    }
    machine
}

/// The node-level `Mtu` of older files, read as the machine's `NetworkConnection.Mtu`.
pub(super) fn node_mtu(r: &mut Reader, n: &Obj<'_>, machine_canon: &str, machine: &mut Machine) {
    let Some(mtu) = r.uint_in(n, "Mtu", mtu_words!()).filter(|&mtu| mtu != 0) else {
        return;
    };
    let path = n.at("Mtu");
    let canon = format!("{machine_canon}.NetworkConnection.Mtu");
    match machine.mtu {
        Some(current) if current != mtu => r.invalid(
            &path,
            Finding::error(
                Code::ConflictingFields,
                &path,
                format!("{path} is {mtu}, but {} is {current}", r.written(&canon)),
            )
            .hint("the MTU is one per machine: keep NetworkConnection.Mtu only"),
        ),
        Some(_) => {}
        None => {
            machine.mtu = Some(mtu);
            r.alias(canon.clone(), path.clone());
            r.findings.push(
                Finding::notice(
                    Code::LegacyField,
                    &path,
                    format!("{path} is the older form; read as {canon}"),
                )
                .hint(format!("move it to {canon}")),
            );
        }
    }
}

/// `null`, `""`, `[]`, `{}`, or made only of those: New-AksEdgeConfig's template
/// `SecondaryNetworks: [{"VMSwitchName": null, …}]` sets nothing.
fn is_unset(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(items) => items.iter().all(is_unset),
        Value::Object(map) => map.values().all(is_unset),
        _ => false,
    }
}

pub(super) fn read_node(r: &mut Reader, n: &Obj<'_>) -> Node {
    r.check_keys(n, NODE_KEYS, NODE_ACCEPTED);
    for (key, what) in NODE_NOT_APPLIED {
        if n.get(key).is_some_and(|v| !is_unset(v)) {
            let path = n.at(key);
            r.findings.push(
                Finding::warning(
                    Code::NotApplied,
                    &path,
                    format!("{path} is not applied by edgenet yet: {what}"),
                )
                .hint(format!("remove {path}, or set it up by hand after deploy")),
            );
        }
    }
    // B26 F4: New-AksEdgeConfig writes the key (null); a value is an IPv6 address the node
    // will not get. Said with the value, as IPv6 is not a field edgenet could apply later.
    if let Some(v) = n.get("GlobalIpv6Address").filter(|v| !is_unset(v)) {
        let path = n.at("GlobalIpv6Address");
        r.findings.push(
            Finding::warning(
                Code::NotApplied,
                &path,
                format!(
                    "{path} is {}, but edgenet does not configure IPv6 (it is IPv4 only): the node gets no IPv6 address",
                    super::reader::show(v)
                ),
            )
            .hint(format!(
                "remove {path} (or set it to null), or give the node its IPv6 address by hand after deploy"
            )),
        );
    }
    Node {
        ip4_address: r.ipv4(n, "Ip4Address"),
        mac_address: r.mac(n, "MacAddress"),
        control_plane: r.bool(n, "ControlPlane"),
        cpu_count: r.uint_in(
            n,
            "CpuCount",
            format_args!("a whole number from 1 to {}", crate::validate::vm::MAX_CPUS),
        ),
        memory_in_mb: r.uint_in(
            n,
            "MemoryInMB",
            format_args!(
                "a whole number from {} to {} (MB)",
                crate::validate::vm::MIN_MEMORY_MB,
                crate::validate::vm::MAX_MEMORY_MB
            ),
        ),
        data_size_in_gb: r.uint_in(
            n,
            "DataSizeInGB",
            format_args!(
                "a whole number from 1 to {} (GB)",
                crate::validate::vm::MAX_DATA_GB
            ),
        ),
    }
}

fn read_edgenet(r: &mut Reader, e: &Obj<'_>, out: &mut Edgenet) {
    r.check_keys_warn_unknown(e, EDGENET_KEYS, &[]);
    out.distribution = r.enumeration(
        e,
        "Distribution",
        &[("k3s", Distribution::K3s), ("k8s", Distribution::K8s)],
    );
    out.node_runtime = r
        .enumeration(
            e,
            "NodeRuntime",
            &[("netns", NodeRuntime::Netns), ("vm", NodeRuntime::Vm)],
        )
        .unwrap_or_default();
    out.switch_name = r.string(e, "SwitchName");
    out.machine_name = machine_name(r, e);
    out.vm_image = r.string(e, "VmImage").filter(|s| !s.is_empty());
    out.vm_kernel = r.string(e, "VmKernel").filter(|s| !s.is_empty());
    out.vm_initrd = r.string(e, "VmInitrd").filter(|s| !s.is_empty());
    out.windows_vm_image = r.string(e, "WindowsVmImage").filter(|s| !s.is_empty());
    let Some(items) = r.array(e, "PortForwards") else {
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let path = format!("{}[{i}]", e.at("PortForwards"));
        let canon = format!("{}[{i}]", e.canon_at("PortForwards"));
        let Value::Object(map) = item else {
            r.invalid(
                &path,
                Finding::error(
                    Code::WrongType,
                    &path,
                    format!(
                        "{path} is {}, expected an object",
                        super::reader::show(item)
                    ),
                ),
            );
            continue;
        };
        let f = Obj::new(path.clone(), canon, map);
        r.check_keys_warn_unknown(&f, FORWARD_KEYS, &[]);
        let protocol = r.enumeration(
            &f,
            "Protocol",
            &[("tcp", Protocol::Tcp), ("udp", Protocol::Udp)],
        );
        let node = r.enumeration(
            &f,
            "Node",
            &[("linux", NodeKind::Linux), ("windows", NodeKind::Windows)],
        );
        let host_port = port(r, &f, "HostPort");
        let node_port = port(r, &f, "NodePort");
        for (key, present) in [
            ("Protocol", protocol.is_some()),
            ("HostPort", host_port.is_some()),
            ("NodePort", node_port.is_some()),
        ] {
            if !present && !r.invalid.contains(&f.at(key)) {
                r.invalid(
                    &f.at(key),
                    Finding::error(
                        Code::RequiredField,
                        f.at(key),
                        format!("{} is required", f.at(key)),
                    )
                    .hint("a port forward needs Protocol (tcp|udp), HostPort and NodePort"),
                );
            }
        }
        if let (Some(protocol), Some(host_port), Some(node_port)) = (protocol, host_port, node_port)
        {
            out.port_forwards.push(PortForward {
                protocol,
                host_port,
                node: node.unwrap_or(NodeKind::Linux),
                node_port,
            });
        }
    }
}

fn port(r: &mut Reader, f: &Obj<'_>, key: &str) -> Option<u16> {
    let n = r.uint_in(f, key, format_args!("a whole number from 1 to 65535"))?;
    match u16::try_from(n) {
        Ok(p) if p > 0 => Some(p),
        _ => {
            let path = f.at(key);
            r.invalid(
                &path,
                Finding::error(
                    Code::PortForwardInvalid,
                    &path,
                    format!("{path} is {n}, not a port"),
                )
                .hint("use a port from 1 to 65535"),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `relax` as it was written before it went by bytes (a character at a time, every
    /// character copied): the reference the byte scan must match character for character, a
    /// blanked character being as many spaces as it has bytes (B24 F5: byte offsets kept).
    fn relax_by_chars(text: &str) -> (String, Vec<&'static str>) {
        let chars: Vec<char> = text.chars().collect();
        let mut out = chars.clone();
        let (mut comments, mut commas) = (false, false);
        let mut in_string = false;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if in_string {
                match c {
                    '\\' => i += 1,
                    '"' => in_string = false,
                    _ => {}
                }
                i += 1;
                continue;
            }
            match c {
                '"' => in_string = true,
                '/' if chars.get(i + 1) == Some(&'/') => {
                    comments = true;
                    while i < chars.len() && !matches!(chars[i], '\n' | '\r') {
                        out[i] = ' ';
                        i += 1;
                    }
                    continue;
                }
                '/' if chars.get(i + 1) == Some(&'*') => {
                    comments = true;
                    let start = i;
                    i += 2;
                    while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                        i += 1;
                    }
                    let end = (i + 2).min(chars.len());
                    for o in &mut out[start..end] {
                        if *o != '\n' {
                            *o = ' ';
                        }
                    }
                    i = end;
                    continue;
                }
                ',' => {
                    let mut j = i + 1;
                    while j < chars.len() && (out[j].is_whitespace() || chars[j] == '/') {
                        if chars[j] == '/' {
                            match chars.get(j + 1) {
                                Some('/') => {
                                    while j < chars.len() && !matches!(chars[j], '\n' | '\r') {
                                        j += 1;
                                    }
                                    continue;
                                }
                                Some('*') => {
                                    j += 2;
                                    while j < chars.len()
                                        && !(chars[j] == '*' && chars.get(j + 1) == Some(&'/'))
                                    {
                                        j += 1;
                                    }
                                    j += 2;
                                    continue;
                                }
                                _ => break,
                            }
                        }
                        j += 1;
                    }
                    if matches!(chars.get(j), Some('}') | Some(']')) {
                        out[i] = ' ';
                        commas = true;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        let text: String = chars
            .iter()
            .zip(out)
            .map(|(&c, o)| {
                if o == c {
                    c.to_string()
                } else {
                    " ".repeat(c.len_utf8())
                }
            })
            .collect();
        (text, relaxed(commas, comments))
    }

    const RELAXED: &[&str] = &[
        "{\"A\": [1, 2,], \"B\": {\"c\": 1,}}",
        "{\"A\": \"a//b\", \"B\": \"/* no */\", \"C\": \",]\", \"D\": \",}\"}",
        "{\"A\": \"q\\\"//not\", /* é */ \"B\": 1,}",
        "{ // ééé 日本 «»\n  \"A\": 1 /* ∞\n ü */ , \"B\": [1, // x\n /* y */ ]}",
        "{\"A\": [1,\u{a0}]}",
        "{\"A\": [1,\u{2028}\u{3000}]}",
        "{\"A\": [1,\r\n // c\r\n]}\r\n",
        "{\"A\": [1,\r // c\r]}\r",
        "{\"A\": 1} /* never closed, ] é",
        "{\"A\": [1, /* never closed ] é",
        "{\"A\": [1,/]}",
        "{\"A\": [1,",
        "{\"A\": 1}/",
        "// only a comment é",
        "/*/ x */ {\"A\": [1 ,/**/]}",
        "{\"A\": \"\\\\\", // c\n\"B\": 2,\n}",
        "{\"A\": \"é\\é\", \"B\": [\"日\",]}",
        "{\"A\": \"never closed, // ]",
        "{\"A\": \"ends in a backslash\\",
        "{\"A\": [1,], \"B\": \"\\\\\", \"C\": [2,]}",
        "",
    ];

    #[test]
    fn relax_blanks_what_the_character_scan_blanked() {
        for text in RELAXED {
            let (relaxed, what) = relax(text);
            let (expected, expected_what) = relax_by_chars(text);
            assert_eq!(relaxed, expected, "{text:?}");
            assert_eq!(what, expected_what, "{text:?}");
        }
    }

    /// What strict JSON reads, `relax` leaves alone: parsing it first, unrelaxed, changes
    /// nothing.
    #[test]
    fn what_strict_json_reads_relax_leaves_alone() {
        for text in RELAXED.iter().chain(&[
            "{\"A\": \"a // b /* c */, ]\", \"B\": [1, 2], \"C\": {\"d\": \",}\"}}",
            "[\"\\\"//\", \",]\"]",
        ]) {
            if super::super::json::parse(text).is_ok() {
                let (relaxed, what) = relax(text);
                assert!(what.is_empty(), "{text:?}");
                assert_eq!(relaxed, *text);
            }
        }
        // A file strict JSON refuses only for its comments and trailing commas is read relaxed.
        let l = load(b"{\"DeploymentType\": \"ScalableCluster\", // c\n}").unwrap();
        let codes: Vec<&str> = l.findings.iter().map(|f| f.code.as_str()).collect();
        assert_eq!(codes, ["json-extension", "json-extension"]);
    }

    #[test]
    fn relax_keeps_a_byte_per_byte_of_a_comment() {
        // Three two-byte characters and two three-byte ones: twelve spaces, so that every
        // position after them is the same byte of the file (its column is counted there).
        let (relaxed, what) = relax("{ // ééé日本\n\"A\": 1 /* ü\n∞ */ ,}");
        assert_eq!(relaxed, "{                \n\"A\": 1      \n        }");
        assert_eq!(what, ["trailing commas", "comments"]);
    }

    #[test]
    fn strict_json_is_not_copied_by_relax() {
        let text = "{\"A\": \"a//b ,]\", \"B\": [1, 2], \"C\": \"/*\"}";
        let (relaxed, what) = relax(text);
        assert!(matches!(relaxed, Cow::Borrowed(t) if t == text));
        assert!(what.is_empty());
        let (relaxed, _) = relax("{\"A\": [1,]}");
        assert!(matches!(relaxed, Cow::Owned(_)));
    }

    #[test]
    fn a_syntax_error_after_comments_with_utf8_is_where_it_was() {
        let e = load("{ // ééé 日本\n  \"A\": 1 /* ü */ oops }".as_bytes()).unwrap_err();
        let LoadError::Syntax { line, column, .. } = e else {
            panic!("{e:?}")
        };
        // Line 2 as written; the column counts the comment's characters (one blank each).
        assert_eq!((line, column), (2, 18));
        let e = load("{\"A\": [1,\u{a0}]}".as_bytes()).unwrap_err();
        let LoadError::Syntax { line, column, .. } = e else {
            panic!("{e:?}")
        };
        assert_eq!((line, column), (1, 10));
    }

    fn position_of(text: &str) -> (usize, usize) {
        match load(text.as_bytes()).unwrap_err() {
            LoadError::Syntax { line, column, .. } => (line, column),
            e => panic!("{e:?}"),
        }
    }

    /// B24 F5: a syntax error's column counts characters, as an editor does, wherever the
    /// multi-byte UTF-8 before it is: in a string, in a key, in a comment, or in both (strict
    /// JSON and relaxed alike), on the first line and on a later one.
    #[test]
    fn a_syntax_errors_column_counts_characters_everywhere() {
        // The error is at the `"` of "x": character 39 of B24's line (its byte 46).
        let cases = [
            r#"        "NetworkPlugin": "flännel✓日本" "x","#,
            r#"        /* ✓ */ "NetworkPlugin": "flännel" "x","#,
            r#"        "NetworkPlugin": /* ✓ */ "flännel" "x","#,
            r#"        "NetworkPlugin": /* ✓✓ */ "flän" "x","#,
            r#"        "NetworkPlügin": "fläñnél日" "x","#,
        ];
        for line in cases {
            let column = line.chars().position(|c| c == 'x').unwrap();
            assert_eq!(line.chars().nth(column - 1), Some('"'));
            for text in [
                format!("{{\n{line}\n}}"),
                format!("{{ // ü\n{line}\n}}"),
                format!("{{\"A\": \"日本\", /* ∞\n ✓ */\n{line},\n}}"),
            ] {
                assert_eq!(
                    position_of(&text),
                    (2 + text.matches("✓ */\n").count(), column),
                    "{text}"
                );
            }
        }
        // On the first line, in a string (strict) and after a comment (relaxed).
        assert_eq!(position_of("{\"A\": \"ä✓\", oops}"), (1, 13));
        assert_eq!(position_of("{\"A\": \"ä✓\", /* ✓ */ oops}"), (1, 21));
        assert_eq!(position_of("{/*日本*/\"ä\": 1 oops}"), (1, 15));
        // A character that is not JSON: its own column, not that of one of its bytes.
        assert_eq!(position_of("{\"ä\": ✓}"), (1, 7));
        assert_eq!(position_of("{\"ä\": 1, // ✓\n ✓}"), (2, 2));
        // An unclosed comment is named by characters too.
        let message = syntax_message_of("{\"ä✓\": 1, /* never".as_bytes());
        assert!(
            message.contains("line 1, column 11 is never closed"),
            "{message}"
        );
    }

    #[test]
    fn char_column_counts_characters_to_the_byte() {
        let line = "aä✓b";
        // Bytes: a 1, ä 2-3, ✓ 4-6, b 7; past the end, the column after the last.
        let columns: Vec<usize> = (0..=9).map(|b| char_column(line, b)).collect();
        // serde_json's 0 (a line's very start, before any byte) is column 1: columns are 1-based.
        assert_eq!(columns, [1, 1, 2, 2, 3, 3, 3, 4, 5, 5]);
        assert_eq!(char_column("ä\nä", 4), 2);
        assert_eq!(char_column("ä\rä", 4), 2);
    }

    /// B25 F5: a lone CR (classic Mac) ends a line, as LF and CRLF do: the same error is at the
    /// same line and column whichever the file has.
    #[test]
    fn a_syntax_error_is_placed_alike_with_cr_crlf_and_lf_line_ends() {
        for end in ["\r", "\r\n", "\n"] {
            let text =
                format!("{{{end}  \"Machines\": [ {{\"MachineName\": \"é\"}} @ ]{end}}}{end}");
            assert_eq!(position_of(&text), (2, 38), "{text:?}");
            // After a comment (relaxed), and at an unclosed comment's start.
            let text = format!("{{ // ✓{end}{end}  \"A\": 1 /* ü */ oops }}{end}");
            assert_eq!(position_of(&text), (3, 18), "{text:?}");
            let text = format!("{{{end}  \"A\": 1, /* é{end}  \"B\": 2{end}}}{end}");
            let message = syntax_message_of(text.as_bytes());
            assert!(
                message.contains("the /* comment at line 2, column 11 is never closed"),
                "{text:?}: {message}"
            );
        }
        assert_eq!(line_column("a\r\rb", 3), (3, 1));
        assert_eq!(line_column("a\r\nb", 3), (2, 1));
        assert_eq!(line_column("a\r\nb", 2), (1, 2));
    }

    /// B25 F5: columns are 1-based: an error at a line's very start (an empty file, the end of
    /// a file after its last line break) is at column 1, never 0.
    #[test]
    fn an_error_at_a_lines_start_is_at_column_1() {
        for (text, at) in [
            ("", (1, 1)),
            ("\n\n", (3, 1)),
            ("{\"A\": 1,\n", (2, 1)),
            ("{\"A\": 1, /* x\n\n\n", (4, 1)),
            ("{\"A\": 1,\r", (2, 1)),
        ] {
            let e = load(text.as_bytes()).unwrap_err();
            let LoadError::Syntax { line, column, .. } = &e else {
                panic!("{e:?}")
            };
            assert_eq!((*line, *column), at, "{text:?}: {e}");
            assert!(!e.to_string().contains("column 0"), "{e}");
        }
    }

    fn syntax_message_of(bytes: &[u8]) -> String {
        match load(bytes).unwrap_err() {
            LoadError::Syntax { message, .. } => message,
            e => panic!("{e:?}"),
        }
    }

    /// B24 F6: a file holding only a comment holds no JSON, not "only white space"; a file
    /// holding only white space still says so.
    #[test]
    fn a_file_of_comments_only_is_said_to_hold_no_json() {
        for text in ["// nothing\n", "  /* a */ // b\n\n"] {
            assert_eq!(
                syntax_message_of(text.as_bytes()),
                "the file holds no JSON, only comments and white space (a config is one JSON object: `edgenet config new -f FILE` writes the default)",
                "{text:?}"
            );
        }
        assert!(syntax_message_of(b" \n\t").starts_with("the file holds only white space ("));
    }

    /// B24 F6: a `/*` never closed names where it starts (the rest of the file is in it).
    #[test]
    fn an_unclosed_block_comment_is_named_where_it_starts() {
        let text = "{\n  \"A\": \"é\", // x\n  \"C\": 3, /* not closed\n  \"B\": 2\n}\n";
        let e = load(text.as_bytes()).unwrap_err();
        let LoadError::Syntax { line, message, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(*line, 6, "{e}");
        assert!(e.to_string().ends_with("at line 6, column 1"), "{e}");
        assert!(
            message.ends_with(" (the /* comment at line 3, column 11 is never closed with */, so the rest of the file is in it)"),
            "{message}"
        );
        // `/*/` does not close itself; a closed comment is not named.
        assert!(
            syntax_message_of(b"{\"A\": 1, /*/ }").contains("line 1, column 10 is never closed")
        );
        assert!(!syntax_message_of(b"{\"A\": 1 /**/ oops}").contains("never closed"));
        // Only a comment, never closed: both said.
        let only = syntax_message_of(b"/* x");
        assert!(only.starts_with("the file holds no JSON"), "{only}");
        assert!(only.contains("line 1, column 1 is never closed"), "{only}");
    }

    /// B24 F6: a file read as Windows-1252 has its own code (not `legacy-field`) and names the
    /// first byte that is not UTF-8 and the fix.
    #[test]
    fn a_file_that_is_not_utf8_is_a_file_encoding_notice() {
        for (bytes, offset) in [
            (&b"{\"DeploymentType\": \"SingleMachineCluster\", \"Edgenet\": {\"MachineName\": \"caf\xe9\"}}"[..], 74),
            (&b"\xef\xbb\xbf{\"DeploymentType\": \"SingleMachineCluster\", \"Edgenet\": {\"MachineName\": \"caf\xe9\"}}"[..], 77),
        ] {
            assert_eq!(bytes[offset], 0xe9);
            let l = load(bytes).unwrap();
            let f = l
                .findings
                .iter()
                .find(|f| f.message.contains("Windows-1252"))
                .unwrap();
            assert_eq!(f.code.as_str(), "file-encoding");
            assert_eq!(f.severity, crate::finding::Severity::Notice);
            assert_eq!(
                f.message,
                format!("the file is not UTF-8 (byte 0xE9 at offset {offset} is not): read as Windows-1252 (Windows PowerShell 5.1's Set-Content default)")
            );
            assert!(f.hint.as_deref().unwrap().starts_with("save it as UTF-8"));
            assert!(l.findings.iter().all(|f| f.code.as_str() != "legacy-field"));
        }
        // UTF-8 and UTF-16 files get no such notice.
        let utf16: Vec<u8> = [0xff, 0xfe]
            .into_iter()
            .chain(
                "{\"DeploymentType\": \"SingleMachineCluster\"}"
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes),
            )
            .collect();
        for bytes in [
            &b"{\"DeploymentType\": \"SingleMachineCluster\"}"[..],
            &utf16,
        ] {
            assert!(load(bytes)
                .unwrap()
                .findings
                .iter()
                .all(|f| f.code.as_str() != "file-encoding"));
        }
    }

    fn loaded(text: &str) -> Loaded {
        load(text.as_bytes()).unwrap()
    }

    fn aliases(l: &Loaded) -> Vec<(&str, &str)> {
        l.config
            .source_paths
            .iter()
            .map(|(c, w)| (c.as_str(), w.as_str()))
            .collect()
    }

    const SCALABLE: &str = r#"{"DeploymentType": "ScalableCluster",
        "Network": {"Ip4GatewayAddress": "10.0.0.1", "Ip4PrefixLength": 24},
        "Machines": [{"MachineName": "a", "NetworkConnection": {"AdapterName": "eth0"},
                      "LinuxNode": {"Ip4Address": "10.0.0.5"}}]}"#;

    #[test]
    fn a_file_in_the_schema_spelling_has_no_aliases() {
        let l = loaded(SCALABLE);
        assert!(l.config.source_paths.is_empty(), "{:?}", aliases(&l));
    }

    #[test]
    fn keys_in_another_case_are_aliased_key_by_key() {
        let l = loaded(
            &SCALABLE
                .replace("\"Network\"", "\"network\"")
                .replace("\"Ip4Address\"", "\"ip4address\""),
        );
        let a = aliases(&l);
        // The object in another case, and every field read in it (absent ones too).
        for expected in [
            ("Network", "network"),
            ("Network.Ip4GatewayAddress", "network.Ip4GatewayAddress"),
            ("Network.DnsServers", "network.DnsServers"),
            ("Network.Proxy", "network.Proxy"),
            (
                "Machines[0].LinuxNode.Ip4Address",
                "Machines[0].LinuxNode.ip4address",
            ),
        ] {
            assert!(a.contains(&expected), "{expected:?} in {a:?}");
        }
        // A field in the schema's case in an object in the schema's case: none.
        assert!(
            !a.iter()
                .any(|(c, _)| c.starts_with("Machines[0].LinuxNode.M")
                    || c.starts_with("Machines[0].NetworkConnection")),
            "{a:?}"
        );
        assert_eq!(a.len(), 16, "{a:?}");
    }

    #[test]
    fn findings_in_objects_of_another_case_name_the_written_path() {
        let l = loaded(
            &SCALABLE
                .replace("\"Machines\"", "\"machines\"")
                .replace("\"LinuxNode\"", "\"linuxNODE\"")
                .replace("\"10.0.0.5\"", "\"10.0.0.05\"")
                .replace(
                    "\"AdapterName\": \"eth0\"",
                    "\"AdapterName\": \"eth0\", \"MTU\": 1.5",
                ),
        );
        let paths: Vec<(&str, &str)> = l
            .findings
            .iter()
            .map(|f| (f.code.as_str(), f.path.as_str()))
            .collect();
        assert!(
            paths.contains(&("invalid-ipv4", "machines[0].linuxNODE.Ip4Address")),
            "{paths:?}"
        );
        assert!(
            paths.contains(&("wrong-type", "machines[0].NetworkConnection.MTU")),
            "{paths:?}"
        );
        let mtu = l
            .findings
            .iter()
            .find(|f| f.code.as_str() == "wrong-type")
            .unwrap();
        assert_eq!(
            mtu.message,
            "machines[0].NetworkConnection.MTU is 1.5, not a whole number; expected 0 (the default) or a whole number from 1280 to 9216"
        );
        // Later rules ask by canonical path.
        assert!(l
            .config
            .invalid_paths
            .contains("Machines[0].LinuxNode.Ip4Address"));
        assert!(l
            .config
            .invalid_paths
            .contains("Machines[0].NetworkConnection.Mtu"));
        assert_eq!(
            l.config.written_path("Machines[0].LinuxNode.Ip4Address"),
            "machines[0].linuxNODE.Ip4Address"
        );
    }

    #[test]
    fn an_older_node_mtu_is_named_as_written() {
        let l = loaded(&SCALABLE.replace("\"10.0.0.5\"", "\"10.0.0.5\", \"mtu\": 1400"));
        assert_eq!(l.config.machines[0].mtu, Some(1400));
        let f = l
            .findings
            .iter()
            .find(|f| f.code.as_str() == "legacy-field")
            .unwrap();
        assert_eq!(f.path, "Machines[0].LinuxNode.mtu");
        assert_eq!(
            f.message,
            "Machines[0].LinuxNode.mtu is the older form; read as Machines[0].NetworkConnection.Mtu"
        );
        assert_eq!(
            l.config.written_path("Machines[0].NetworkConnection.Mtu"),
            "Machines[0].LinuxNode.mtu"
        );
    }

    #[test]
    fn an_inline_deployment_config_is_aliased_under_its_key() {
        let l = loaded(&format!(r#"{{"aksEdgeConfig": {SCALABLE}}}"#));
        assert_eq!(
            l.config.written_path("Machines[0].LinuxNode.Ip4Address"),
            "aksEdgeConfig.Machines[0].LinuxNode.Ip4Address"
        );
        let a = aliases(&l);
        assert!(
            a.contains(&(
                "Machines[0].LinuxNode.Ip4Address",
                "aksEdgeConfig.Machines[0].LinuxNode.Ip4Address"
            )),
            "{a:?}"
        );
        assert!(a.contains(&("Network", "aksEdgeConfig.Network")), "{a:?}");
    }

    #[test]
    fn a_machine_name_in_capitals_is_read_in_lower_case_said_once() {
        let l = loaded(&SCALABLE.replace("\"MachineName\": \"a\"", "\"machinename\": \"EDGE-A\""));
        assert_eq!(l.config.machines[0].machine_name.as_deref(), Some("edge-a"));
        let f: Vec<&Finding> = l
            .findings
            .iter()
            .filter(|f| f.code.as_str() == "machine-name-case")
            .collect();
        assert_eq!(f.len(), 1, "{:?}", l.findings);
        assert_eq!(f[0].path, "Machines[0].machinename");
        // Already in lower case: nothing said.
        assert!(loaded(SCALABLE).findings.is_empty());
    }
}

#[cfg(test)]
mod b26_tests {
    use super::*;

    const SCALABLE: &str = r#"{"DeploymentType": "ScalableCluster",
        "Network": {"Ip4GatewayAddress": "10.0.0.1", "Ip4PrefixLength": 24},
        "Machines": [{"MachineName": "a", "NetworkConnection": {"AdapterName": "eth0"},
                      "LinuxNode": {"Ip4Address": "10.0.0.5"IPV6}}]}"#;

    fn with_ipv6(v: &str) -> Loaded {
        let text = SCALABLE.replace("IPV6", &format!(", \"GlobalIpv6Address\": {v}"));
        load(text.as_bytes()).unwrap()
    }

    #[test]
    fn a_global_ipv6_address_is_warned_with_its_path_and_value() {
        let l = with_ipv6("\"2001:db8::5\"");
        let f: Vec<&Finding> = l
            .findings
            .iter()
            .filter(|f| f.code.as_str() == "not-applied")
            .collect();
        assert_eq!(f.len(), 1, "{:#?}", l.findings);
        assert_eq!(f[0].path, "Machines[0].LinuxNode.GlobalIpv6Address");
        assert_eq!(f[0].severity, crate::finding::Severity::Warning);
        assert!(f[0].message.contains("\"2001:db8::5\""), "{}", f[0].message);
        assert!(f[0].message.contains("IPv6"), "{}", f[0].message);
        // Not an unknown key besides.
        assert_eq!(l.findings.len(), 1, "{:#?}", l.findings);
        // In any case of the key, at the path as written.
        let text = SCALABLE.replace("IPV6", ", \"globalipv6address\": \"fd00::1\"");
        let l = load(text.as_bytes()).unwrap();
        assert!(
            l.findings.iter().any(|f| f.code.as_str() == "not-applied"
                && f.path == "Machines[0].LinuxNode.globalipv6address"),
            "{:#?}",
            l.findings
        );
        // New-AksEdgeConfig's default (null) and an empty value set nothing: silent.
        for unset in ["null", "\"\"", "\"  \""] {
            let l = with_ipv6(unset);
            assert!(l.findings.is_empty(), "{unset}: {:#?}", l.findings);
        }
    }

    fn syntax(bytes: &[u8]) -> (usize, usize, String) {
        match load(bytes).unwrap_err() {
            LoadError::Syntax {
                line,
                column,
                message,
            } => (line, column, message),
            other => panic!("{other:?}"),
        }
    }

    const SMALL: &str = "{\"DeploymentType\": \"SingleMachineCluster\"}\n";

    #[test]
    fn one_trailing_ctrl_z_is_the_dos_end_of_file_mark_read_with_a_notice() {
        for text in [
            format!("{SMALL}\u{1a}"),
            SMALL.trim_end().to_string() + "\u{1a}",
            format!("{SMALL}\u{1a}\r\n"),
        ] {
            let l = load(text.as_bytes()).unwrap();
            let f: Vec<&Finding> = l
                .findings
                .iter()
                .filter(|f| f.code.as_str() == "file-encoding")
                .collect();
            assert_eq!(f.len(), 1, "{:#?}", l.findings);
            assert!(f[0].message.contains("Ctrl-Z (0x1A)"), "{}", f[0].message);
            assert_eq!(f[0].severity, crate::finding::Severity::Notice);
            assert_eq!(parse_text(text.as_bytes()).unwrap(), l.source);
        }
        // UTF-16 too (the mark is a character, not a byte).
        let utf16: Vec<u8> = [0xff, 0xfe]
            .into_iter()
            .chain(
                format!("{SMALL}\u{1a}")
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes),
            )
            .collect();
        assert!(load(&utf16).is_ok());
        // Without it: no notice.
        assert!(load(SMALL.as_bytes()).unwrap().findings.is_empty());
    }

    #[test]
    fn trailing_ctrl_z_nul_and_text_are_named() {
        let (line, column, m) = syntax(format!("{SMALL}\u{1a}\u{1a}").as_bytes());
        assert_eq!((line, column), (2, 1), "{m}");
        assert!(
            m.contains("2 Ctrl-Z (0x1A) characters after the JSON document"),
            "{m}"
        );
        assert!(m.contains("invisible in editors"), "{m}");
        assert!(m.contains("closing }, starting"), "{m}");
        let (_, _, m) = syntax(format!("{SMALL}\u{1a}x").as_bytes());
        assert!(m.contains("a Ctrl-Z (0x1A) character and more text"), "{m}");
        let (line, column, m) = syntax(format!("{SMALL}\0\0\0").as_bytes());
        assert_eq!((line, column), (2, 1), "{m}");
        assert!(
            m.contains("3 NUL bytes (0x00) after the JSON document"),
            "{m}"
        );
        let (_, _, m) = syntax(format!("{}\0", SMALL.trim_end()).as_bytes());
        assert!(
            m.contains("a NUL byte (0x00) after the JSON document"),
            "{m}"
        );
        let (_, _, m) = syntax(format!("{SMALL}\u{7}").as_bytes());
        assert!(m.contains("U+0007"), "{m}");
        let (_, _, m) = syntax(format!("{SMALL}{SMALL}").as_bytes());
        assert!(m.contains("starting with '{'"), "{m}");
        // After a multi-byte character.
        let (_, _, m) = syntax("{\"a\": \"é\"}é".as_bytes());
        assert!(m.contains("starting with 'é'"), "{m}");
    }
}
