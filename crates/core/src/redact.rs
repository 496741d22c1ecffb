//! Proxy credentials never leave the machine's protected files: every report redacts the
//! password of a `scheme://user:password@host` URL as `user:***@` (issue 8, defect 6).
//!
//! Pure text rewriting, so it can be applied to anything printed: finding messages, plan
//! tables, JSON documents (a password cannot contain a raw `"`, `/` or whitespace in a URL, so
//! the rewrite never leaves a JSON string).

/// What a redacted password reads as.
pub const MASK: &str = "***";

/// `text` with the password of every `scheme://user:password@` userinfo replaced by `***`.
/// A userinfo without a password (`user@`) is left as it is.
pub fn redact_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (before, after) = rest.split_at(pos + 3);
        out.push_str(before);
        // The authority ends at the first path, query or fragment delimiter, or where the URL
        // itself ends (whitespace, a quote, a comma between list entries).
        let end = after
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | ',' | '\\') || c.is_whitespace()
            })
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..colon]);
                        out.push(':');
                        out.push_str(MASK);
                    }
                    _ => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Whether `text` still holds a password in a URL (for assertions and debug checks).
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
        ] {
            assert_eq!(redact_credentials(raw), want, "{raw}");
            assert!(has_credentials(raw));
            assert!(!has_credentials(want));
        }
    }

    #[test]
    fn text_without_passwords_is_unchanged() {
        for s in [
            "http://proxy:3128",
            "http://bob@proxy:3128",
            "plain text: with @ and ::",
            "ftp://",
            "a://b:c/d@e",
            "",
        ] {
            assert_eq!(redact_credentials(s), s);
        }
    }
}
