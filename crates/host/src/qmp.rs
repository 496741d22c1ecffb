//! A QMP client (QEMU's JSON control protocol on a Unix socket): enough to ask a VM its run
//! state, press its power button and make QEMU quit.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::error::HostError;

pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    what: String,
}

impl Qmp {
    /// Connects and leaves the capabilities negotiation; every reply waits at most `timeout`.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Self, HostError> {
        let what = path.display().to_string();
        let stream =
            UnixStream::connect(path).map_err(|e| HostError::new("connect to QMP", &what, e))?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| HostError::new("connect to QMP", &what, e))?;
        let writer = stream
            .try_clone()
            .map_err(|e| HostError::new("connect to QMP", &what, e))?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
            what,
        };
        let greeting = qmp.read()?;
        if greeting.get("QMP").is_none() {
            return Err(qmp.bad("no QMP greeting"));
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    fn bad(&self, why: &str) -> HostError {
        HostError::new(
            "talk to QMP",
            &self.what,
            io::Error::new(io::ErrorKind::InvalidData, why.to_string()),
        )
    }

    fn read(&mut self) -> Result<Value, HostError> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(|e| HostError::new("read QMP", &self.what, e))?;
        if n == 0 {
            return Err(HostError::new(
                "read QMP",
                &self.what,
                io::Error::from(io::ErrorKind::UnexpectedEof),
            ));
        }
        serde_json::from_str(&line).map_err(|_| self.bad("not JSON"))
    }

    /// Runs one command; events that arrive meanwhile are skipped.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, HostError> {
        let mut msg = json!({ "execute": command });
        if let Some(a) = arguments {
            msg["arguments"] = a;
        }
        let mut text = msg.to_string();
        text.push('\n');
        self.writer
            .write_all(text.as_bytes())
            .map_err(|e| HostError::new("write QMP", &self.what, e))?;
        loop {
            let reply = self.read()?;
            if reply.get("event").is_some() {
                continue;
            }
            if let Some(r) = reply.get("return") {
                return Ok(r.clone());
            }
            let desc = reply
                .pointer("/error/desc")
                .and_then(Value::as_str)
                .unwrap_or("unknown error")
                .to_string();
            return Err(HostError::new(
                format!("QMP {command}"),
                &self.what,
                io::Error::other(desc),
            ));
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
