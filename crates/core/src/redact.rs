//! Proxy credentials never leave the machine's protected files: every report redacts the
//! userinfo of anything shaped `user:password@host` or `token@host` (issue 8, defects 6 and 5b).
//!
//! Pure text rewriting, so it can be applied to anything printed: finding messages, plan
//! tables, JSON documents. The userinfo is found from its `@` backwards, not from a URL parser:
//! a value without a scheme (`user:pw@proxy:3128`), a `no_proxy` entry, or a password with an
//! unencoded `/`, `#` or `?` is masked as well. The mask never contains a quote, so the rewrite
//! never leaves a JSON string.

/// What a redacted password (or token) reads as.
pub const MASK: &str = "***";

/// Characters that end a userinfo when looking backwards from its `@` (besides `://`): what
/// separates words, list entries, assignments and quoted strings in anything edgenet prints.
fn is_boundary(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '"' | '\''
                | ','
                | '='
                | '<'
                | '>'
                | '('
                | ')'
                | '['
                | ']'
                | '{'
                | '}'
                | ';'
                | '`'
                | '\\'
        )
}

/// `text` with every userinfo masked: `user:password@` becomes `user:***@`, `token@` becomes
/// `***@`. An `@` not followed by a host (`a @ b`, `x@`) is left alone.
pub fn redact_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // Everything before `done` is in `out`.
    let mut done = 0;
    let mut search = 0;
    while let Some(rel) = text[search..].find('@') {
        let at = search + rel;
        search = at + 1;
        if !host_follows(&text[at + 1..]) {
            continue;
        }
        // The userinfo may itself contain `@` (an unencoded one in a password): the last `@`
        // of this word ends it.
        let word_end = text[at..].find(is_boundary).map_or(text.len(), |i| at + i);
        let at = text[at..word_end]
            .rfind('@')
            .map(|i| at + i)
            .filter(|&i| host_follows(&text[i + 1..]))
            .unwrap_or(at);
        search = at + 1;
        let before = &text[done..at];
        let mut start = before.rfind(is_boundary).map_or(0, |i| {
            i + before[i..].chars().next().map_or(1, char::len_utf8)
        });
        if let Some(scheme) = before.rfind("://") {
            start = start.max(scheme + 3);
        }
        let userinfo = &before[start..];
        if userinfo.is_empty() || userinfo == MASK || userinfo.ends_with(":***") {
            continue;
        }
        out.push_str(&before[..start]);
        if let Some(colon) = userinfo.find(':') {
            out.push_str(&userinfo[..colon]);
            out.push(':');
        }
        out.push_str(MASK);
        done = at;
    }
    out.push_str(&text[done..]);
    out
}

fn host_follows(rest: &str) -> bool {
    rest.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '[')
}

/// Whether `text` still holds a userinfo (for assertions and debug checks).
pub fn has_credentials(text: &str) -> bool {
    redact_credentials(text) != text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_and_the_rest_kept() {
        for (raw, want) in [
            ("http://bob:s3cret@proxy:3128", "http://bob:***@proxy:3128"),
            (
                "http_proxy=http://bob:s3cret@proxy.corp:3128/x?y",
                "http_proxy=http://bob:***@proxy.corp:3128/x?y",
            ),
            // `@` inside the password: the last `@` of the authority ends the userinfo.
            ("http://bob:p@ss@proxy:3128", "http://bob:***@proxy:3128"),
            ("http://bob:@proxy", "http://bob:***@proxy"),
            (
                "{\"http\":\"http://a:b@p:1\",\"https\":\"https://c:d@q\"}",
                "{\"http\":\"http://a:***@p:1\",\"https\":\"https://c:***@q\"}",
            ),
            (
                "no_proxy=localhost,.corp http://u:v@h",
                "no_proxy=localhost,.corp http://u:***@h",
            ),
            // No scheme (issue 8 retest): the value as typed, and as a no_proxy entry.
            (
                "Network.Proxy.Https is \"user:secretA@198.18.0.1:3128\": not a URL",
                "Network.Proxy.Https is \"user:***@198.18.0.1:3128\": not a URL",
            ),
            (
                "no_proxy entry \"u2:secret2@x.example\" is bad",
                "no_proxy entry \"u2:***@x.example\" is bad",
            ),
            (
                "localhost,u2:secret2@x.example",
                "localhost,u2:***@x.example",
            ),
            // Unencoded separators in the password.
            ("http://user:sec/retP@h:1", "http://user:***@h:1"),
            ("http://user:sec#re?tP@h:1/x", "http://user:***@h:1/x"),
            ("a://b:c/d@e", "a://b:***@e"),
            // A token alone is the secret.
            ("http://tok3n@proxy:3128", "http://***@proxy:3128"),
            ("HTTPS_PROXY=tok3n@proxy:3128", "HTTPS_PROXY=***@proxy:3128"),
        ] {
            assert_eq!(redact_credentials(raw), want, "{raw}");
            assert!(has_credentials(raw));
            assert!(!has_credentials(want), "{want}");
        }
    }

    #[test]
    fn text_without_credentials_is_unchanged() {
        for s in [
            "http://proxy:3128",
            "plain text: with @ and ::",
            "trailing@",
            "ftp://",
            "x @ y",
            "",
        ] {
            assert_eq!(redact_credentials(s), s);
        }
    }
}
