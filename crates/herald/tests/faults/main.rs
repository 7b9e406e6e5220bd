//! The fault-injection suite: a workload against one SQLite node or three Postgres nodes while
//! faults hit at random times drawn from a seed, and a checker that reads the whole history
//! (see RELIABILITY.md for what it found over long runs).
//!
//! ```text
//! cargo test -p herald --test faults                          # the short run CI makes
//! cargo test -p herald --test faults -- --duration 30m --seed 7 --engine postgres --rate 60
//! cargo test -p herald --test faults -- --soak --duration 10m      # the storage soak
//! ```
//!
//! A test binary without libtest's harness, so that it takes options. Its own checks run
//! first: the checker must catch a lost message and a reordered FIFO pair planted in a real
//! history. Faults that the machine cannot inject (no root for tmpfs, no libfaketime, no
//! Postgres) are skipped, and the report says so. Everything runs on loopback.

#![allow(clippy::unwrap_used)]

mod checker;
mod cluster;
mod receiver;
mod report;
mod run;
mod schedule;
mod soak;
#[path = "../support/mod.rs"]
mod support;
// Shared with the integration tests; the suite uses part of it.
#[allow(dead_code)]
#[path = "../it/tcp_proxy.rs"]
mod tcp_proxy;

use std::process::ExitCode;
use std::time::Duration;

/// The options, given after `--`.
#[derive(Debug, Clone)]
pub struct Options {
    pub duration: Duration,
    pub seed: u64,
    pub engines: Vec<run::Engine>,
    /// Publishes per second.
    pub rate: u32,
    /// The storage soak instead of the faults (`soak.rs`).
    pub soak: bool,
}

fn parse_options() -> Result<Option<Options>, String> {
    let mut options = Options {
        duration: Duration::from_secs(50),
        seed: 20_261_203,
        engines: vec![run::Engine::Sqlite, run::Engine::Postgres],
        rate: 40,
        soak: false,
    };
    let mut duration_given = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            // `cargo test -- --list` asks test binaries what they hold.
            "--list" => return Ok(None),
            "--duration" => {
                options.duration = herald_core::retry::parse_duration(&value("--duration")?)?;
                duration_given = true;
            }
            "--soak" => options.soak = true,
            "--seed" => {
                options.seed = value("--seed")?.parse().map_err(|_| "--seed: a number")?;
            }
            "--rate" => {
                options.rate = value("--rate")?.parse().map_err(|_| "--rate: a number")?;
            }
            "--engine" => {
                options.engines = match value("--engine")?.as_str() {
                    "sqlite" => vec![run::Engine::Sqlite],
                    "postgres" => vec![run::Engine::Postgres],
                    "both" => vec![run::Engine::Sqlite, run::Engine::Postgres],
                    other => {
                        return Err(format!("--engine: sqlite, postgres or both, not {other}"));
                    }
                };
            }
            // What cargo passes every test binary (filters, --nocapture, …): not ours.
            _ => {}
        }
    }
    if options.soak {
        if !duration_given {
            options.duration = Duration::from_secs(10 * 60);
        }
        if options.duration < soak::SHORTEST {
            return Err(format!(
                "--soak needs a --duration of at least {:?}",
                soak::SHORTEST
            ));
        }
    }
    Ok(Some(options))
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(Some(options)) => options,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("faults: {e}");
            return ExitCode::from(2);
        }
    };
    if options.soak {
        println!(
            "faults: storage soak, {:?} per engine, {} publishes/s",
            options.duration, options.rate
        );
    } else {
        println!(
            "faults: seed {} (replay with `-- --seed {}`), {:?} per engine, {} publishes/s",
            options.seed, options.seed, options.duration, options.rate
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut failed = false;
    for engine in options.engines.clone() {
        let outcome = if options.soak {
            runtime.block_on(soak::run(engine, &options))
        } else {
            runtime.block_on(run::run(engine, &options))
        };
        match outcome {
            Ok(outcome) => {
                println!("{}", outcome.markdown);
                failed |= !outcome.passed;
            }
            Err(skip) => println!("faults: {engine:?} skipped: {skip}"),
        }
    }
    if failed {
        println!("faults: FAILED");
        ExitCode::FAILURE
    } else {
        println!("faults: passed");
        ExitCode::SUCCESS
    }
}
