//! The words for a native nf_tables write the kernel refused: labelled as the native netlink
//! write it was (not as the `nft` command line it stands in for), one line per distinct errno
//! however many commands drew it, naming the first command that failed. The libnftables texts
//! ("Error: Could not process rule: File exists") stay in it: callers read those.

use serde_json::Value;

use super::native::NativeError;

/// What the native write of `document` failed with, in words.
pub(super) fn describe(document: &Value, error: &NativeError) -> String {
    let errors = match error {
        NativeError::Kernel(errors) => errors,
        NativeError::Io(_) => return error.text(),
    };
    let commands = document.get("nftables").and_then(Value::as_array);
    let total = commands.map_or(0, Vec::len);
    // Distinct errnos in the order the kernel reported them, with the commands each answers.
    let mut by_errno: Vec<(i32, Vec<usize>)> = Vec::new();
    for (index, errno) in errors {
        match by_errno.iter_mut().find(|(e, _)| e == errno) {
            Some((_, at)) => at.push(*index),
            None => by_errno.push((*errno, vec![*index])),
        }
    }
    by_errno
        .iter()
        .map(|(errno, at)| {
            let first = at[0];
            let command = commands
                .and_then(|c| c.get(first))
                .map_or_else(|| "?".to_string(), summary);
            let count = match at.len() {
                1 => String::new(),
                n if n == total => format!(" (all {n} commands of the transaction)"),
                n => format!(" ({n} of the transaction's {total} commands)"),
            };
            format!(
                "Error: Could not process rule: {}{count}; first at command {} of {total}: {command}",
                nix::errno::Errno::from_raw(*errno).desc(),
                first + 1,
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One command in nft's words: `add chain ip edgenet_x forward`, `add rule ip edgenet_x
/// forward "edgenet: …"`.
fn summary(command: &Value) -> String {
    let Some((verb, object)) = command.as_object().and_then(|o| o.iter().next()) else {
        return command.to_string();
    };
    let Some((kind, body)) = object.as_object().and_then(|o| o.iter().next()) else {
        return command.to_string();
    };
    let s = |k: &str| body.get(k).and_then(Value::as_str);
    let mut words = vec![verb.as_str(), kind.as_str()];
    words.extend(s("family"));
    match kind.as_str() {
        "table" => words.extend(s("name")),
        "chain" => words.extend(s("table").into_iter().chain(s("name"))),
        _ => words.extend(s("table").into_iter().chain(s("chain"))),
    }
    let mut out = words.join(" ");
    if let Some(comment) = s("comment") {
        out.push_str(&format!(" {comment:?}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn repeated_errnos_are_one_line_naming_the_first_failing_command() {
        let doc = json!({"nftables": [
            {"add": {"table": {"family": "ip", "name": "edgenet_x"}}},
            {"add": {"chain": {"family": "ip", "table": "edgenet_x", "name": "forward"}}},
            {"add": {"rule": {"family": "ip", "table": "edgenet_x", "chain": "forward",
                "comment": "edgenet: a", "expr": []}}},
        ]});
        let all = NativeError::Kernel(vec![(0, libc::EPERM), (1, libc::EPERM), (2, libc::EPERM)]);
        let text = describe(&doc, &all);
        assert_eq!(
            text,
            "Error: Could not process rule: Operation not permitted (all 3 commands of the \
             transaction); first at command 1 of 3: add table ip edgenet_x"
        );
        let two = NativeError::Kernel(vec![(1, libc::ENOENT), (2, libc::EEXIST)]);
        let text = describe(&doc, &two);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.contains("No such file or directory; first at command 2 of 3: add chain ip edgenet_x forward"),
            "{text}"
        );
        assert!(
            text.contains(
                "File exists; first at command 3 of 3: add rule ip edgenet_x forward \"edgenet: a\""
            ),
            "{text}"
        );
    }
}
