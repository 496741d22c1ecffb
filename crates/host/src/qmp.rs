//! A QMP client (QEMU's JSON control protocol on a Unix socket): enough to ask a VM its run
//! state, press its power button and make QEMU quit.

use std::io;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::error::HostError;
use crate::json_lines::JsonLines;

pub struct Qmp {
    wire: JsonLines,
}

impl Qmp {
    /// Connects and leaves the capabilities negotiation; every reply waits at most `timeout`.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Self, HostError> {
        let mut qmp = Qmp {
            wire: JsonLines::connect(path, timeout, "QMP")?,
        };
        let greeting = qmp.wire.read()?;
        if greeting.get("QMP").is_none() {
            return Err(qmp.wire.bad("no QMP greeting"));
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    /// Runs one command; events that arrive meanwhile are skipped.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, HostError> {
        self.wire.send(command, arguments)?;
        loop {
            let reply = self.wire.read()?;
            if reply.get("event").is_some() {
                continue;
            }
            return self
                .wire
                .returned(command, &reply)
                .unwrap_or_else(|| Err(self.wire.bad("a reply with neither return nor error")));
        }
    }

    /// `running`, `paused`, `shutdown`, ... (QMP's RunState).
    pub fn status(&mut self) -> Result<String, HostError> {
        let r = self.execute("query-status", None)?;
        Ok(r.get("status")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_string())
    }

    /// Resumes a paused VM.
    pub fn cont(&mut self) -> Result<(), HostError> {
        self.execute("cont", None).map(|_| ())
    }

    /// The ACPI power button: a guest that handles it shuts down and QEMU exits.
    pub fn powerdown(&mut self) -> Result<(), HostError> {
        self.execute("system_powerdown", None).map(|_| ())
    }

    /// QEMU exits at once (the connection closes before or after the reply).
    pub fn quit(&mut self) -> Result<(), HostError> {
        match self.execute("quit", None) {
            Ok(_) => Ok(()),
            Err(e) if e.io_error().kind() == io::ErrorKind::UnexpectedEof => Ok(()),
            Err(e) => Err(e),
        }
    }
}
