//! The `herald` binary: parses the command line and maps failures to exit codes
//! (0 success, 1 runtime failure, 2 usage or configuration error).

use std::process::ExitCode;

use clap::FromArgMatches;
use herald::Application;
use herald::cli::{CatalogCommand, Cli, Command, SecretsCommand, StatsCommand};
use herald::config::Resolver;

fn main() -> ExitCode {
    let matches = herald::cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // The settings of `serve`, `migrate`, `secrets rotate-key` and `stats storage` are in the innermost
    // subcommand's matches, which also tell a flag from an environment variable.
    let mut settings = &matches;
    while let Some((_, sub)) = settings.subcommand() {
        settings = sub;
    }

    match cli.command {
        Command::Verify(args) => {
            let mut body = Vec::new();
            if let Err(e) = std::io::Read::read_to_end(&mut std::io::stdin(), &mut body) {
                eprintln!("herald: cannot read the body from stdin: {e}");
                return ExitCode::FAILURE;
            }
            match herald::commands::verify(&args, &body, chrono::Utc::now().timestamp()) {
                Ok(()) => {
                    println!("verified");
                    ExitCode::SUCCESS
                }
                Err(herald::commands::VerifyFailure::Usage(e)) => usage_error(&e),
                Err(herald::commands::VerifyFailure::Rejected(reason)) => {
                    println!("not verified: {reason}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Catalog(CatalogCommand::Import(args)) => {
            match runtime().block_on(herald::commands::import_catalog(&args)) {
                Ok(summary) => {
                    println!("{summary}");
                    ExitCode::SUCCESS
                }
                Err(herald::commands::ImportFailure::Usage(e)) => usage_error(&e),
                Err(herald::commands::ImportFailure::Failed(e)) => {
                    eprintln!("herald: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Secrets(SecretsCommand::RotateKey(args)) => {
            let (storage, keys) =
                match Resolver::new(settings, args.config.as_deref()).and_then(|r| {
                    let storage = r.storage()?;
                    let keys = herald::config::secrets_from_env()?;
                    Ok((storage, keys))
                }) {
                    Ok(found) => found,
                    Err(e) => return usage_error(&e),
                };
            runtime().block_on(async {
                let result = async {
                    let lock = herald::startup::lock_sqlite(&storage.database_url)?;
                    let store = herald_store::connect(&storage.database_url).await?;
                    let keys = herald::bootstrap::KeySettings {
                        data_dir: storage.data_dir.clone(),
                        key: keys.encryption_key,
                        old_keys: keys.encryption_old_keys,
                    };
                    let changed = herald::bootstrap::rotate_key(&keys, store.as_ref()).await?;
                    store.close().await;
                    drop(lock);
                    Ok::<_, herald::startup::StartError>(changed)
                }
                .await;
                match result {
                    Ok(changed) => {
                        eprintln!("herald: re-encrypted {changed} stored values under the new key");
                        ExitCode::SUCCESS
                    }
                    Err(e) => failure(&e),
                }
            })
        }
        command @ (Command::Listen(_)
        | Command::Send(_)
        | Command::App(_)
        | Command::Endpoint(_)
        | Command::Message(_)
        | Command::EventType(_)
        | Command::Inbox(_)) => runtime().block_on(herald::client::run(command)),
        #[cfg(feature = "bench")]
        Command::Bench(args) => match runtime().block_on(herald::bench::run(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e @ herald::bench::BenchError::Usage(_)) => usage_error(&e),
            Err(e) => {
                eprintln!("herald bench: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Version => {
            println!("herald {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Migrate(args) => {
            let storage =
                match Resolver::new(settings, args.config.as_deref()).and_then(|r| r.storage()) {
                    Ok(storage) => storage,
                    Err(e) => return usage_error(&e),
                };
            runtime().block_on(async {
                // Only a SQLite database lives in the data directory.
                let sqlite = herald_store::backend_of(&storage.database_url)
                    == Some(herald_store::Backend::Sqlite);
                if sqlite && let Err(e) = herald::bootstrap::ensure_data_dir(&storage.data_dir) {
                    return failure(&e);
                }
                match herald_store::connect(&storage.database_url).await {
                    Ok(store) => {
                        store.close().await;
                        eprintln!(
                            "herald: the database at {} is up to date",
                            herald::config::redact_url(&storage.database_url)
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => failure(&e),
                }
            })
        }
        Command::Stats(StatsCommand::Storage(args)) => {
            let storage = match Resolver::new(settings, args.storage.config.as_deref())
                .and_then(|r| r.storage())
            {
                Ok(storage) => storage,
                Err(e) => return usage_error(&e),
            };
            runtime().block_on(async {
                match herald::commands::storage_stats(&storage, args.json).await {
                    Ok(report) => {
                        print!("{report}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => failure(&e),
                }
            })
        }
        Command::Serve(args) => {
            let config = match Resolver::new(settings, args.storage.config.as_deref())
                .and_then(|r| r.serve())
            {
                Ok(config) => config,
                Err(e) => return usage_error(&e),
            };
            herald::telemetry::init(config.log_format);
            runtime().block_on(async {
                // Listen for signals from the start: a SIGTERM during start-up (migrations, say)
                // is a clean stop too.
                let stop = tokio_util::sync::CancellationToken::new();
                let exit_with_parent = config.exit_with_parent;
                tokio::spawn({
                    let stop = stop.clone();
                    async move {
                        tokio::select! {
                            () = shutdown_signal() => {
                                tracing::info!("shutdown requested; finishing open requests");
                            }
                            () = parent_exited(), if exit_with_parent => {
                                tracing::info!("the parent process exited; stopping");
                            }
                        }
                        stop.cancel();
                    }
                });
                let app = tokio::select! {
                    built = Application::build(config) => match built {
                        Ok(app) => app,
                        Err(e) => return failure(&e),
                    },
                    () = stop.cancelled() => return ExitCode::SUCCESS,
                };
                app.print_admin_notice();
                eprintln!(
                    "herald: listening on http://{} (API docs at /docs)",
                    app.local_addr()
                );
                match app.run_until_stopped(stop.cancelled_owned()).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => failure(&e),
                }
            })
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts")
}

fn usage_error(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("herald: {e}");
    ExitCode::from(2)
}

fn failure(e: &dyn std::error::Error) -> ExitCode {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    eprintln!("herald: {message}");
    ExitCode::FAILURE
}

/// Completes once the process that started this one has exited (`--exit-with-parent`): the
/// orphan is adopted by another process, so its parent id changes. Polled, because the one
/// kernel notice of it (`PR_SET_PDEATHSIG`) needs `unsafe`, which Herald forbids; a server left
/// behind for half a second is no harm.
async fn parent_exited() {
    #[cfg(unix)]
    {
        let parent = std::os::unix::process::parent_id();
        let mut every = tokio::time::interval(std::time::Duration::from_millis(500));
        loop {
            every.tick().await;
            if std::os::unix::process::parent_id() != parent {
                return;
            }
        }
    }
    #[cfg(not(unix))]
    std::future::pending::<()>().await
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
