//! The command line, declared with clap.
//!
//! The options that configure the server are declared once, in [`crate::config`]
//! ([`ServeSettings`], [`StorageSettings`]), which layers them with `herald.toml` and the
//! environment and can therefore name the exact source of a bad value; here they are only
//! placed on their subcommands.

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::config::{ServeSettings, StorageSettings, with_env_names};

const ENVIRONMENT_HELP: &str = "\
Environment:
  HERALD_ADMIN_TOKEN         Admin bearer token. When unset, Herald generates one at first start,
                             prints it once and keeps it in <data-dir>/admin-token (mode 0600).
  HERALD_ENCRYPTION_KEY      Base64 of 32 bytes: the key that seals secrets at rest. When unset,
                             Herald creates <data-dir>/encryption.key (mode 0600) at first start.
  HERALD_ENCRYPTION_OLD_KEYS Comma-separated older keys, still accepted for reading.
  HERALD_SERVER, HERALD_TOKEN
                             Where the client commands (send, app, endpoint, message,
                             event-type, inbox) find Herald, and the token they use.
  RUST_LOG                   Log filter, e.g. `info,herald=debug` (default `info`).

Precedence: built-in defaults < herald.toml < HERALD_* environment < command-line flags.";

#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about = "Herald: a self-hostable webhook platform in one binary",
    long_about = "Herald stores, signs, delivers and retries webhooks for the applications you \
                  register, with a Svix-compatible management API. It runs as one process on an \
                  embedded SQLite database, or as any number of processes sharing a Postgres \
                  database.",
    after_help = ENVIRONMENT_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The command line with the environment variable of every server setting (see
/// [`with_env_names`]); parse with this rather than `Cli::command()`.
pub fn command() -> clap::Command {
    Cli::command()
        .mut_subcommand("serve", with_env_names)
        .mut_subcommand("migrate", with_env_names)
        .mut_subcommand("secrets", |secrets| {
            secrets.mut_subcommand("rotate-key", with_env_names)
        })
        .mut_subcommand("stats", |stats| {
            // `--json` is how to print, not a setting: no environment variable.
            stats.mut_subcommand("storage", |storage| {
                with_env_names(storage).mut_arg("json", |json| json.env(None))
            })
        })
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the management API and the delivery worker (see --role).
    #[command(after_help = ENVIRONMENT_HELP)]
    Serve(Box<ServeSettings>),
    /// Bring the database schema up to date, then exit.
    #[command(after_help = ENVIRONMENT_HELP)]
    Migrate(StorageSettings),
    /// What the database holds (`herald stats storage`).
    #[command(subcommand)]
    Stats(StatsCommand),
    /// Check a received delivery's signature, as a receiver would. Reads the body from stdin;
    /// exits 0 when it verifies, 1 (with the reason) when it does not.
    Verify(VerifyArgs),
    /// Manage the keys Herald itself holds.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Built-in event catalogues of the seed systems.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Receive webhooks on this machine: print each delivery (time, headers, pretty JSON) and
    /// whether its signature verifies, and answer 200 (or --status).
    Listen(ListenArgs),
    /// Publish a message to an application and print its id.
    Send(Box<SendArgs>),
    /// Applications on a Herald server (--server / HERALD_SERVER, --token / HERALD_TOKEN).
    #[command(subcommand)]
    App(AppCommand),
    /// An application's endpoints.
    #[command(subcommand)]
    Endpoint(EndpointCommand),
    /// An application's messages.
    #[command(subcommand)]
    Message(MessageCommand),
    /// The event type catalogue.
    #[command(subcommand)]
    EventType(EventTypeCommand),
    /// Inboxes: what Herald received by path.
    #[command(subcommand)]
    Inbox(InboxCommand),
    /// Measure this machine's ceiling and Herald against it on loopback, and print a markdown
    /// table (or JSON). Starts its own receiver and Herald processes; see BENCHMARKS.md.
    #[cfg(feature = "bench")]
    Bench(BenchArgs),
    /// Print the version and exit.
    Version,
}

/// The options of `herald bench` (the `bench` cargo feature, on by default).
#[cfg(feature = "bench")]
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Every scenario scaled down, the whole run under a minute: for CI and quick checks.
    #[arg(long)]
    pub quick: bool,

    /// Print one JSON object instead of markdown tables.
    #[arg(long)]
    pub json: bool,

    /// Length of each timed phase, in seconds. [default: 10, or 2 with --quick]
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<String>,

    /// Also measure throughput on this Postgres database, with one node and with three. Give
    /// it an empty database: the benchmark creates its applications there.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,

    /// Run only these scenarios (comma-separated): ceiling, throughput, publish-latency, lag,
    /// fanout, isolation, transform, broker, backlog, postgres. The others are `null` in the
    /// JSON.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub only: Vec<String>,

    /// Run everything N times and report each headline figure's median and range, since runs
    /// on a shared machine differ (at most 20).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub repeat: usize,
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Re-encrypt every stored secret under a new encryption key. Stop the server first. With
    /// HERALD_ENCRYPTION_KEY, the new key is that one and HERALD_ENCRYPTION_OLD_KEYS must list
    /// the old one; with the key file, a new key is generated and replaces it.
    #[command(after_help = ENVIRONMENT_HELP)]
    RotateKey(StorageSettings),
}

#[derive(Debug, Subcommand)]
pub enum StatsCommand {
    /// Rows and bytes of each main table, the database's size (and on SQLite its free space),
    /// and the oldest message and attempt. Opens the database as `herald migrate` does
    /// (applying pending migrations); safe while the server runs. Counts every row: may take a
    /// while on a large database.
    #[command(after_help = ENVIRONMENT_HELP)]
    Storage(StatsStorageArgs),
}

/// The options of `herald stats storage`.
#[derive(Debug, Clone, Args)]
pub struct StatsStorageArgs {
    #[command(flatten)]
    pub storage: StorageSettings,

    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Create a catalogue's event types, with JSON schemas and examples, on a running Herald.
    /// Event types that exist are left alone: importing twice changes nothing.
    Import(CatalogImportArgs),
}

#[derive(Debug, Clone, Args)]
pub struct CatalogImportArgs {
    /// The catalogue: kobiton, electric-imp, impilo or ideavate.
    pub name: String,
    /// The Herald server to talk to.
    #[arg(long, env = "HERALD_SERVER", default_value = "http://127.0.0.1:8071")]
    pub server: String,
    /// An admin token for that server.
    #[arg(long, env = "HERALD_TOKEN", hide_env_values = true)]
    pub token: String,
}

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// The endpoint's signature scheme: standard-v1, standard-v1a, hmac-sha1-hex,
    /// hmac-sha256-hex, static-header or none.
    #[arg(long, default_value = "standard-v1")]
    pub scheme: String,

    /// The secret to verify with: the endpoint's secret, or for standard-v1a its public key
    /// (`whpk_…`).
    #[arg(
        long,
        env = "HERALD_VERIFY_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub secret: String,

    /// A header of the received request, `name: value` (repeat for each header).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    pub headers: Vec<String>,

    /// The signature header of the hex and static schemes, when not the default.
    #[arg(long, value_name = "NAME")]
    pub signature_header: Option<String>,

    /// The text before the hex digest, when not the default (`sha256=` for hmac-sha256-hex).
    #[arg(long, value_name = "TEXT")]
    pub prefix: Option<String>,

    /// Largest accepted difference between `webhook-timestamp` and now, in seconds; 0 turns
    /// the check off.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub tolerance: i64,
}

/// Where the client commands find Herald, and how they print.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// The Herald server to talk to.
    #[arg(
        long,
        env = "HERALD_SERVER",
        default_value = "http://127.0.0.1:8071",
        value_name = "URL"
    )]
    pub server: String,

    /// A bearer token: the admin token or an API key.
    #[arg(
        long,
        env = "HERALD_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,

    /// Print the server's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Which page of a list to print.
#[derive(Debug, Clone, Args)]
pub struct PageArgs {
    /// Items to print (1 to 250).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,

    /// Continue from the `iterator` a previous list printed.
    #[arg(long)]
    pub iterator: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ListenArgs {
    /// Port to listen on (on 127.0.0.1); 0 picks a free one.
    #[arg(long, default_value_t = 8072)]
    pub port: u16,

    /// The endpoint's secret: deliveries are verified with it (for standard-v1a, the public key
    /// `whpk_…`). Without it nothing is verified.
    #[arg(long, env = "HERALD_LISTEN_SECRET", hide_env_values = true)]
    pub secret: Option<String>,

    /// The endpoint's signature scheme: standard-v1, standard-v1a, hmac-sha1-hex,
    /// hmac-sha256-hex, static-header or none.
    #[arg(long, default_value = "standard-v1")]
    pub scheme: String,

    /// The signature header of the hex and static schemes, when not the default.
    #[arg(long, value_name = "NAME")]
    pub signature_header: Option<String>,

    /// The text before the hex digest, when not the default.
    #[arg(long, value_name = "TEXT")]
    pub prefix: Option<String>,

    /// Largest accepted age of `webhook-timestamp` in seconds; 0 turns the check off.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub tolerance: i64,

    /// Also pass each delivery on to this URL (your application under development); its
    /// answer becomes the answer, unless --status is given.
    #[arg(long, value_name = "URL")]
    pub forward_to: Option<String>,

    /// The status to answer every delivery with. [default: 200, or the --forward-to answer]
    #[arg(long, value_name = "N")]
    pub status: Option<u16>,

    /// Instead of listening: consume this polling endpoint (its poller URL,
    /// http://host/api/v1/app/APP/poller/ENDPOINT) and pass each message on to --forward-to,
    /// acknowledging only what was passed on.
    #[arg(long, value_name = "ENDPOINT_URL")]
    pub poll: Option<String>,

    /// With --poll: the consumer name Herald keeps the position of.
    #[arg(long, default_value = "herald-listen", value_name = "NAME")]
    pub consumer: String,

    /// With --poll: a bearer token (the admin token or an API key).
    #[arg(
        long,
        env = "HERALD_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub server: ServerArgs,

    /// The application: id or uid.
    #[arg(long)]
    pub app: String,

    #[arg(long)]
    pub event_type: String,

    /// The payload: JSON, `@file` to read it from a file, or `@-` for stdin.
    #[arg(long)]
    pub data: String,

    /// A unique id of the event in the application (a second send with it is refused).
    #[arg(long)]
    pub event_id: Option<String>,

    /// A channel (repeatable).
    #[arg(long = "channel")]
    pub channels: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// List applications.
    List {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show an application.
    Get {
        #[command(flatten)]
        server: ServerArgs,
        /// Id or uid.
        app: String,
    },
    /// Create an application.
    Create {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        name: String,
        #[arg(long)]
        uid: Option<String>,
    },
    /// Delete an application with everything it has.
    Delete {
        #[command(flatten)]
        server: ServerArgs,
        /// Id or uid.
        app: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    /// List an application's endpoints.
    List {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        page: PageArgs,
        /// The application: id or uid.
        #[arg(long)]
        app: String,
    },
    /// Show an endpoint.
    Get {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        app: String,
        /// Id or uid.
        endpoint: String,
    },
    /// Create an endpoint.
    Create {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        app: String,
        #[arg(long)]
        url: String,
        /// An event type (or pattern such as `reading.*`) it receives (repeatable); all when
        /// none is given.
        #[arg(long = "event-type")]
        event_types: Vec<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        uid: Option<String>,
    },
    /// Delete an endpoint.
    Delete {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        app: String,
        /// Id or uid.
        endpoint: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MessageCommand {
    /// List an application's messages, newest first.
    List {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        page: PageArgs,
        #[arg(long)]
        app: String,
    },
    /// Show a message (by id or eventId).
    Get {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        app: String,
        message: String,
    },
    /// Publish a message (the same as `herald send`).
    Create(SendArgs),
}

#[derive(Debug, Subcommand)]
pub enum EventTypeCommand {
    /// List the event types.
    List {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show an event type.
    Get {
        #[command(flatten)]
        server: ServerArgs,
        name: String,
    },
    /// Create an event type.
    Create {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Archive an event type (with --expunge: delete it for good).
    Delete {
        #[command(flatten)]
        server: ServerArgs,
        name: String,
        #[arg(long)]
        expunge: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// Every entry, with its metadata: a JSON array, one entry per line.
    Json,
    /// One row per entry, the bodies' fields as columns.
    Csv,
    /// The data tree alone, as Firebase's console exports it.
    Tree,
}

#[derive(Debug, Subcommand)]
pub enum InboxCommand {
    /// List inboxes.
    List {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Export what an inbox received, with a progress bar when stderr is a terminal.
    Export {
        #[command(flatten)]
        server: ServerArgs,
        /// The inbox: name or id.
        inbox: String,
        #[arg(long, value_enum, default_value = "json")]
        format: ExportFormat,
        /// Write to this file instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Only entries at this path or below it.
        #[arg(long)]
        path: Option<String>,
    },
}
