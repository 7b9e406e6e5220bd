//! Herald: a self-hostable webhook platform.
//!
//! This crate is the server and the command line. The pure domain lives in `herald-core` and
//! storage in `herald-store`; here are the HTTP API ([`api`]), configuration ([`config`]), the
//! first-start set-up of keys ([`bootstrap`]), the web portal
//! and operator console ([`portal`]), the process lifecycle ([`startup`]) and the
//! commands that talk to a running server ([`client`]).

pub mod api;
#[cfg(feature = "bench")]
pub mod bench;
pub mod bootstrap;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod crash;
pub mod http;
pub mod metrics;
pub mod operational;
pub mod outbound;
pub mod portal;
pub mod retention;
pub mod serve;
pub mod startup;
pub mod tasks;
pub mod telemetry;
pub mod wakeup;
pub mod worker;

pub use config::Config;
pub use startup::Application;
