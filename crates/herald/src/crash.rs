//! Crash points for fault-injection tests.
//!
//! `HERALD_CRASH_AT=<name>` in the environment makes the process abort (no destructors, no
//! flush: as SIGKILL would) the first time it reaches the point of that name. A test uses it to
//! kill the process exactly between two steps whose order a promise depends on, which a signal
//! from outside can only hit by chance. Without the variable a point costs one comparison.
//!
//! The points:
//! - `operational-relay`: an operational event committed with its change, not yet published
//!   as a message;
//! - `operational-relayed`: the events published as messages, not yet deleted from the outbox.

use std::sync::OnceLock;

/// Aborts the process when `HERALD_CRASH_AT` names this point.
pub fn point(name: &str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    let at = AT.get_or_init(|| std::env::var("HERALD_CRASH_AT").ok());
    if at.as_deref() == Some(name) {
        eprintln!("herald: crash point {name} reached (HERALD_CRASH_AT); aborting");
        std::process::abort();
    }
}
