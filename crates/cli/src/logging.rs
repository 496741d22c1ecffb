//! Log output on stderr: `-v` info, `-vv` debug (every netlink change and file write), `-vvv`
//! trace (step timings); `EDGENET_LOG` takes a tracing filter instead, and a bad one is an
//! error rather than silently ignored.

use tracing_subscriber::EnvFilter;

use crate::exit::{CliError, Exit};

/// Whether progress messages ("deploying …") are wanted (`-q` turns them off).
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

pub fn init(verbose: u8, quiet: bool) -> Result<(), CliError> {
    QUIET.store(quiet, std::sync::atomic::Ordering::Relaxed);
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        (_, 2) => "debug",
        _ => "trace",
    };
    let filter = match std::env::var("EDGENET_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(&spec).map_err(|e| {
            CliError::new(
                Exit::Unreadable,
                "invalid-arguments",
                format!("EDGENET_LOG={spec:?} is not a log filter: {e}"),
            )
            .hint("use a level (error, warn, info, debug, trace) or targets such as \"edgenet_deploy=debug\"")
        })?,
        Ok(_) | Err(std::env::VarError::NotPresent) => EnvFilter::new(default),
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(CliError::new(
                Exit::Unreadable,
                "invalid-arguments",
                "EDGENET_LOG is not valid UTF-8",
            ))
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(crate::output::color_for(&std::io::stderr()))
        .without_time()
        // A closed stderr loses the line; reporting that on stderr again would panic.
        .log_internal_errors(false)
        .init();
    Ok(())
}
