//! Linux interface names: what the kernel accepts as one. Used by the config reader (a legacy
//! adapter name) and by validation alike.

/// Linux `IFNAMSIZ - 1`.
pub const MAX_IFNAME: usize = 15;

/// Why `name` cannot be a Linux interface name, if it cannot.
pub fn interface_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("it is empty".into())
    } else if name.len() > MAX_IFNAME {
        Some(format!(
            "it is {} bytes; Linux allows at most {MAX_IFNAME}",
            name.len()
        ))
    } else if name == "." || name == ".." {
        Some("it is a path component".into())
    } else {
        name.chars()
            .find(|c| *c == '/' || *c == ':' || c.is_whitespace() || c.is_control())
            .map(|c| format!("{c:?} is not allowed"))
    }
}
