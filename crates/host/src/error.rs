//! The error of every host operation: what was attempted, on which object, and the OS error.
//!
//! Its own module (not part of `netlink`) so that every other host module can name it without
//! depending on the netlink layer.

use std::io;

/// An error of one kernel or host-file operation, naming what was attempted on which object,
/// e.g. `create bridge aksedgesw-int: File exists (os error 17)`.
///
/// The OS error is part of the message (it is the useful part), so it is not also returned as
/// [`std::error::Error::source`]; read it with [`HostError::io_error`] or [`HostError::errno`].
#[derive(Debug, thiserror::Error)]
#[error("{op}{}: {io}{}", object_part(.object), detail_part(.detail))]
pub struct HostError {
    op: String,
    object: String,
    io: io::Error,
    detail: Option<String>,
}

fn object_part(object: &str) -> String {
    if object.is_empty() {
        String::new()
    } else {
        format!(" {object}")
    }
}

fn detail_part(detail: &Option<String>) -> String {
    match detail {
        Some(d) => format!(" (kernel: {d})"),
        None => String::new(),
    }
}

impl HostError {
    /// `op` is a verb phrase ("create bridge"), `object` what it was done to ("aksedgesw-int").
    pub fn new(op: impl Into<String>, object: impl Into<String>, io: io::Error) -> Self {
        HostError {
            op: op.into(),
            object: object.into(),
            io,
            detail: None,
        }
    }

    /// Adds the kernel's extended-ack message (why a netlink request was refused).
    pub fn with_detail(mut self, detail: Option<String>) -> Self {
        self.detail = detail;
        self
    }

    pub fn op(&self) -> &str {
        &self.op
    }

    pub fn object(&self) -> &str {
        &self.object
    }

    pub fn io_error(&self) -> &io::Error {
        &self.io
    }

    /// The kernel's errno (`libc::EEXIST`, ...), when the failure came from the kernel.
    pub fn errno(&self) -> Option<i32> {
        self.io.raw_os_error()
    }

    /// The object already exists (`EEXIST`).
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }

    /// The object (or the link it lives on) does not exist: `ENODEV` (link), `ENOENT` (file,
    /// namespace), `ESRCH` (route), `EADDRNOTAVAIL` (address).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.errno(),
            Some(libc::ENODEV | libc::ENOENT | libc::ESRCH | libc::EADDRNOTAVAIL)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_operation_and_object() {
        let e = HostError::new(
            "create bridge",
            "aksedgesw-int",
            io::Error::from_raw_os_error(libc::EEXIST),
        );
        assert!(e
            .to_string()
            .starts_with("create bridge aksedgesw-int: File exists"));
        assert!(e.is_exists());
        assert!(!e.is_not_found());
        let e = HostError::new("dump links", "", io::Error::from_raw_os_error(libc::EPERM))
            .with_detail(Some("nope".into()));
        assert!(e
            .to_string()
            .starts_with("dump links: Operation not permitted"));
        assert!(e.to_string().ends_with("(kernel: nope)"));
    }
}
