//! Exit codes scripts can trust, and the one error type every command returns.

use std::process::ExitCode;

use crate::cli::Output;
use crate::output::errln;

/// 0 success; 1 the config has errors or the operation found problems; 2 the config cannot be
/// read or parsed (and clap's own usage errors); 3 the host could not be changed as asked.
/// A `deploy` or `remove` interrupted by SIGINT/SIGTERM ends by that signal (128 + N in a
/// shell: 130, 143; see `interrupt`), not by one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    Findings = 1,
    Unreadable = 2,
    Host = 3,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// A command that could not do its job. `code` names it for JSON output.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub code: &'static str,
    pub message: String,
    pub hint: Option<String>,
}

impl CliError {
    pub fn new(exit: Exit, code: &'static str, message: impl Into<String>) -> Self {
        CliError {
            exit,
            code,
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn exit_code(&self) -> Exit {
        self.exit
    }

    /// Text on stderr for people; the envelope of `schema` on stdout for scripts.
    pub fn report(&self, output: Output, schema: &crate::envelope::Schema) {
        match output {
            Output::Json => crate::envelope::print_error(schema, self, &serde_json::Value::Null),
            _ => {
                use edgenet_core::redact::redact_credentials;
                errln!("edgenet: {}", redact_credentials(&self.message));
                if let Some(hint) = &self.hint {
                    errln!("  hint: {}", redact_credentials(hint));
                }
            }
        }
    }
}
