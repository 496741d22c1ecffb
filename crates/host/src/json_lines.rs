//! The wire protocol QEMU's two control sockets share: QMP (QEMU itself) and the guest agent
//! (qemu-ga in the guest, behind a virtio-serial port) both take one JSON command per line,
//! `{"execute": …, "arguments": …}`, and answer one JSON object per line, `{"return": …}` or
//! `{"error": {"desc": …}}`. [`crate::qmp`] and [`crate::guest_agent`] add what differs
//! (QMP's greeting and events, the agent's sync and turn-taking).

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::error::HostError;

/// A connected JSON-lines client; `peer` names the other end in errors ("QMP", "the guest
/// agent").
pub struct JsonLines {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    what: String,
    peer: &'static str,
}

impl JsonLines {
    /// Connects to `path`; every read waits at most `timeout`.
    pub fn connect(path: &Path, timeout: Duration, peer: &'static str) -> Result<Self, HostError> {
        let what = path.display().to_string();
        let err = |e| HostError::new(format!("connect to {peer}"), &what, e);
        let stream = UnixStream::connect(path).map_err(err)?;
        stream.set_read_timeout(Some(timeout)).map_err(err)?;
        let writer = stream.try_clone().map_err(err)?;
        Ok(JsonLines {
            reader: BufReader::new(stream),
            writer,
            what,
            peer,
        })
    }

    /// Changes how long each later read may wait.
    pub fn set_timeout(&self, timeout: Duration) {
        let _ = self.writer.set_read_timeout(Some(timeout));
    }

    /// An error about what the peer said (not JSON, a missing field, …).
    pub fn bad(&self, why: &str) -> HostError {
        HostError::new(
            format!("talk to {}", self.peer),
            &self.what,
            io::Error::new(io::ErrorKind::InvalidData, why.to_string()),
        )
    }

    /// Sends one command.
    pub fn send(&mut self, command: &str, arguments: Option<Value>) -> Result<(), HostError> {
        let mut msg = json!({ "execute": command });
        if let Some(a) = arguments {
            msg["arguments"] = a;
        }
        let mut text = msg.to_string();
        text.push('\n');
        self.writer
            .write_all(text.as_bytes())
            .map_err(|e| HostError::new(format!("write to {}", self.peer), &self.what, e))
    }

    /// The next JSON object. Blank lines and 0xff bytes (the guest agent's
    /// `guest-sync-delimited` marker) carry nothing and are skipped.
    pub fn read(&mut self) -> Result<Value, HostError> {
        loop {
            let mut line = Vec::new();
            let n = self
                .reader
                .read_until(b'\n', &mut line)
                .map_err(|e| HostError::new(format!("read {}", self.peer), &self.what, e))?;
            if n == 0 {
                return Err(HostError::new(
                    format!("read {}", self.peer),
                    &self.what,
                    io::Error::from(io::ErrorKind::UnexpectedEof),
                ));
            }
            line.retain(|b| *b != 0xff);
            let text = String::from_utf8_lossy(&line);
            if text.trim().is_empty() {
                continue;
            }
            return serde_json::from_str(text.trim()).map_err(|_| self.bad("not JSON"));
        }
    }

    /// The value of a `{"return": …}` reply to `command`, or its `{"error": …}` as an error;
    /// `None` for anything else (an event).
    pub fn returned(&self, command: &str, reply: &Value) -> Option<Result<Value, HostError>> {
        if let Some(r) = reply.get("return") {
            return Some(Ok(r.clone()));
        }
        let error = reply.get("error")?;
        let desc = error
            .get("desc")
            .and_then(Value::as_str)
            .unwrap_or("unknown error");
        Some(Err(HostError::new(
            format!("{} {command}", self.peer.trim_start_matches("the ")),
            &self.what,
            io::Error::other(desc.to_string()),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    fn pair(script: &'static [u8]) -> (JsonLines, std::thread::JoinHandle<Vec<u8>>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            conn.write_all(script).unwrap();
            let mut got = Vec::new();
            let mut r = BufReader::new(conn);
            r.read_until(b'\n', &mut got).unwrap();
            drop(dir);
            got
        });
        let client = JsonLines::connect(&path, Duration::from_secs(5), "QMP").unwrap();
        (client, server)
    }

    #[test]
    fn skips_blank_lines_and_delimiters_and_maps_replies() {
        let (mut c, server) = pair(b"\n\xff{\"event\":\"X\"}\n{\"return\":{\"a\":1}}\n{\"error\":{\"desc\":\"no such\"}}\n");
        c.send("query-status", Some(json!({"x": 1}))).unwrap();
        let event = c.read().unwrap();
        assert!(c.returned("query-status", &event).is_none());
        let ok = c.read().unwrap();
        assert_eq!(c.returned("q", &ok).unwrap().unwrap(), json!({"a": 1}));
        let err = c.read().unwrap();
        let e = c.returned("quit", &err).unwrap().unwrap_err().to_string();
        assert!(e.contains("QMP quit") && e.contains("no such"), "{e}");
        let sent: Value = serde_json::from_slice(&server.join().unwrap()).unwrap();
        assert_eq!(
            sent,
            json!({"execute": "query-status", "arguments": {"x": 1}})
        );
        let eof = c.read().unwrap_err().to_string();
        assert!(eof.contains("read QMP"), "{eof}");
    }
}
