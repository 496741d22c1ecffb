//! How reports look: plain text for people (coloured per `--color`), JSON for scripts
//! (see [`crate::envelope`]).

use std::io::IsTerminal;
use std::sync::OnceLock;

use edgenet_core::redact::redact_credentials;
use edgenet_core::validate::{Finding, Severity};

use crate::cli::ColorChoice;

/// `println!` for every report on standard output. A write that fails must not panic (exit
/// 101, as `println!` does): a full disk (`status > /dev/full`) is remembered and said once the
/// command is over (error `write`, exit 3: see [`stdout_failed`]). A reader that went away is
/// not an error: SIGPIPE ends the process first, except in `deploy` and `remove`, which ignore
/// it once the host is changed (see `main`): their text is lost and the exit status stays the
/// run's.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        $crate::output::note_write(writeln!(std::io::stdout().lock(), $($arg)*));
    }};
}
pub(crate) use outln;

/// [`outln!`] without the newline (`print!`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        $crate::output::note_write(write!(std::io::stdout().lock(), $($arg)*));
    }};
}
pub(crate) use out;

/// The first error a write to standard output met (see [`outln!`]).
static STDOUT_ERROR: std::sync::Mutex<Option<std::io::Error>> = std::sync::Mutex::new(None);

/// Remembers the first failed write to standard output (a closed pipe is not one: see
/// [`outln!`]).
pub fn note_write(result: std::io::Result<()>) {
    if let Err(e) = result {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return;
        }
        let mut first = STDOUT_ERROR.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert(e);
    }
}

/// Writes `bytes` to standard output as [`out!`] does.
pub fn out_bytes(bytes: &[u8]) {
    use std::io::Write as _;
    note_write(std::io::stdout().lock().write_all(bytes));
}

/// Flushes standard output; the first write that failed (or this flush), if any: the report
/// is lost, which the command must say (`status -o json > /dev/full` exiting 0 would read as
/// "no drift" to a script).
pub fn stdout_failed() -> Option<std::io::Error> {
    use std::io::Write as _;
    note_write(std::io::stdout().lock().flush());
    STDOUT_ERROR
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
}

/// [`outln!`] for standard error.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}
pub(crate) use errln;

static COLOR: OnceLock<ColorChoice> = OnceLock::new();

/// The `--color` choice, set once at start.
pub fn set_color(choice: ColorChoice) {
    let _ = COLOR.set(choice);
}

/// Whether to colour what goes to `stream`: `always`, `never`, or (`auto`) a terminal while
/// NO_COLOR is unset (<https://no-color.org>) and TERM is not `dumb`.
pub fn color_for(stream: &impl IsTerminal) -> bool {
    match COLOR.get().copied().unwrap_or(ColorChoice::Auto) {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
            let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
            !no_color && !dumb && stream.is_terminal()
        }
    }
}

/// ANSI styling of text reports.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    on: bool,
}

impl Style {
    pub fn for_stdout() -> Self {
        Style {
            on: color_for(&std::io::stdout()),
        }
    }

    pub fn for_stderr() -> Self {
        Style {
            on: color_for(&std::io::stderr()),
        }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }

    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }

    pub fn severity(self, s: Severity) -> String {
        match s {
            Severity::Error => self.paint("1;31", "error"),
            Severity::Warning => self.paint("1;33", "warning"),
            Severity::Notice => self.paint("1;36", "notice"),
        }
    }
}

/// One finding as people read it:
/// `error[address-duplicate] Machines[0].LinuxNode.Ip4Address: … \n  hint: …`.
pub fn finding_text(f: &Finding, style: Style) -> String {
    let mut s = format!("{}[{}]", style.severity(f.severity), f.code);
    if !f.path.is_empty() {
        s.push(' ');
        s.push_str(&style.bold(&f.path));
        s.push(':');
    }
    s.push(' ');
    s.push_str(&redact_credentials(&f.message));
    if let Some(hint) = &f.hint {
        s.push_str(&format!(
            "\n  {} {}",
            style.dim("hint:"),
            redact_credentials(hint)
        ));
    }
    s
}

pub fn summary(findings: &[Finding]) -> String {
    let count = |sev| findings.iter().filter(|f| f.severity == sev).count();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    format!(
        "{}, {}, {}",
        plural(count(Severity::Error), "error"),
        plural(count(Severity::Warning), "warning"),
        plural(count(Severity::Notice), "notice")
    )
}

/// A left-aligned table with a header row.
pub fn table(header: &[&str], rows: &[Vec<String>], style: Style) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = style.bold(&line(header.iter().map(|h| h.to_string()).collect()));
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.clone()));
    }
    out
}
