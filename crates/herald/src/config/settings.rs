//! The options of `herald serve` and `herald migrate`, each declared once, and the layers their
//! values come from.
//!
//! An option of `herald serve` is one entry of the `serve_options!` table below (see
//! `declare.rs`): its doc comment is the `--help` text, its name the `herald.toml` key, `--name`
//! (kebab-case) its flag and `HERALD_NAME` its environment variable ([`with_env_names`] derives
//! them); the entry also gives its type, default, value name and how its text is parsed and
//! bounded. From the table come [`ServeSettings`] (what clap and serde fill) and
//! [`ServeOptions`] (the typed values, resolved by one generated resolver). The storage options
//! shared with `herald migrate` and `herald secrets rotate-key` are the fields of
//! [`StorageSettings`], resolved by [`super::Resolver::storage`]: the default of one depends
//! on the other.
//!
//! Values stay the text the user wrote until [`super::Resolver`] parses them, so that a bad one
//! is reported naming the option and the layer it came from.
//!
//! The layers are merged with figment, lowest first: `herald.toml`, then the environment, then
//! the command line. Built-in defaults apply where no layer has a value.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Args, Command};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};
use herald_core::retry::{DEFAULT_SCHEDULE, parse_schedule};
use herald_core::validate::Limits;
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};
use zeroize::Zeroizing;

use super::{
    ConfigError, DEFAULT_LISTEN, LogFormat, Origin, Role, parse_http_url, parse_listen,
    parse_log_format, parse_network, parse_pool_size, parse_role, parse_statement_timeout,
};

/// Where Herald keeps its state: the options of `herald migrate` and `herald secrets`, and the
/// storage half of `herald serve`.
#[derive(Debug, Clone, Default, Args, Serialize, Deserialize)]
pub struct StorageSettings {
    /// Configuration file (TOML). Defaults to ./herald.toml when that file exists.
    // Not a layered setting: it chooses the file layer, so it has no key in that file.
    #[arg(long, env = "HERALD_CONFIG", value_name = "PATH")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Directory for the SQLite database, the generated admin token and the encryption key file;
    /// created if missing. [default: ./herald-data]
    #[arg(long, value_name = "PATH")]
    pub data_dir: Option<String>,

    /// Database to use: sqlite://PATH, or postgres://USER:PASSWORD@HOST:PORT/DATABASE for
    /// several Herald nodes on one database. [default: sqlite://<data-dir>/herald.db]
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

/// The shortest `--lease-duration`: what the worker's own waits are checked against.
pub const SHORTEST_LEASE: Duration = Duration::from_secs(5);

// The options of `herald serve`, in the order of `--help` and of the keys listed when
// `herald.toml` has an unknown one. `name: Type = default, "default in --help" => kind,
// "VALUE_NAME" [more clap arguments];` — the kinds are described in `declare.rs`.
serve_options! {
    /// What this process runs: `api` (the management API), `worker` (deliveries, and the
    /// health routes) or `all`. Roles other than `all` need Postgres.
    role: Role = Role::All, "all" => custom(parse_role), "ROLE";

    /// Address the HTTP API listens on; port 0 picks a free port.
    listen: SocketAddr = DEFAULT_LISTEN, "127.0.0.1:8071" => text(parse_listen), "ADDR";

    /// Base URL under which clients reach this server, used in portal links.
    public_url: Option<url::Url> = None, "http://<listen address>"
        => text(parse_http_url), "URL";

    /// Let deliveries reach this network although it is private, loopback or link-local
    /// (repeatable; the environment variable takes a comma-separated list), e.g. 10.0.0.0/8.
    allow_networks: Vec<IpNet> = Vec::new()
        => list(parse_network), "CIDR" [long = "allow-network", value_delimiter = ','];

    /// Largest accepted request body in bytes; larger bodies get 413.
    max_body_bytes: usize = 1024 * 1024, "1048576" => whole(1024, 64 * 1024 * 1024), "BYTES";

    /// Longest accepted endpoint URL in characters.
    max_url_length: usize = Limits::default().max_url_length, "8192"
        => whole(16, 65_536), "CHARS";

    /// Longest accepted endpoint description in characters.
    max_description_length: usize = Limits::default().max_description_length, "512"
        => whole(1, 65_536), "CHARS";

    /// Most endpoints one application may have; creating one more gets 422.
    max_endpoints_per_app: usize = Limits::default().max_endpoints_per_app, "1000"
        => whole(1, 1_000_000), "COUNT";

    /// Requests per second each API token may make (bursts up to one second's worth); more get
    /// 429 with `Retry-After`. Counted per node. 0 turns the limit off.
    api_rate_limit: u32 = 1000, "1000" => whole(0, 1_000_000), "PER_SECOND";

    /// Time a client has to send a request's headers, and then its body; idle keep-alive
    /// connections close after it too. 1s to 1h.
    client_timeout: Duration = Duration::from_secs(30), "30s"
        => duration(Duration::from_secs(1), Duration::from_secs(3600), "1s and 1h"), "DURATION";

    /// Send deliveries through this HTTP proxy (an http:// or https:// URL). The
    /// proxy then resolves host names and owns the network policy for them: Herald still
    /// refuses literal addresses outside --allow-network. Proxy environment variables such as
    /// HTTPS_PROXY are never used.
    outbound_proxy: Option<url::Url> = None, "none" => text(parse_http_url), "URL";

    /// Log output: `pretty` for people, `json` for log collectors.
    log_format: LogFormat = LogFormat::Pretty, "pretty" => text(parse_log_format), "FORMAT";

    /// Retry delays after a failed attempt, e.g. `1s,1s,2s` or `15m,30m,60m` (units ms, s, m, h,
    /// d); endpoints may set their own.
    retry_schedule: Vec<Duration> = DEFAULT_SCHEDULE.to_vec(), "5s,5m,30m,2h,5h,10h,10h"
        => text(parse_schedule), "DELAYS";

    /// Timeout of one delivery attempt (connect, request and response) unless the endpoint sets
    /// `timeoutSeconds`; 1s to 60s.
    delivery_timeout: Duration = Duration::from_secs(15), "15s"
        => duration(Duration::from_secs(1), Duration::from_secs(60)), "DURATION";

    /// Disable an endpoint whose attempts have all failed for this long.
    disable_after: Duration = Duration::from_secs(5 * 86_400), "5d"
        => duration(Duration::from_secs(60), Duration::from_secs(365 * 86_400)), "DURATION";

    /// How long a node owns an endpoint (and a dead node's endpoints wait) without renewing:
    /// renewed every third of it. Half of it is the margin allowed for nodes' clock skew and
    /// added to each attempt's task lease. 5s to 10m.
    lease_duration: Duration = Duration::from_secs(30), "30s"
        => duration(SHORTEST_LEASE, Duration::from_secs(600), "5s and 10m"), "DURATION";

    /// Postgres connections per node (the listener for wake-ups is one more). Postgres only:
    /// SQLite has one writer connection. 2 to 1000.
    database_pool_size: u32 = 10, "10" => custom(parse_pool_size), "COUNT";

    /// Postgres cancels any statement of this node running longer (`statement_timeout`); the
    /// call fails and is retried like any database failure. `0s` for no limit. Postgres only.
    /// 0s, or 100ms to 1h.
    database_statement_timeout: Duration = Duration::ZERO, "0s"
        => custom(parse_statement_timeout), "DURATION";

    /// On SIGTERM, how long to wait for delivery attempts in flight.
    shutdown_grace: Duration = Duration::from_secs(30), "30s"
        => duration(Duration::ZERO, Duration::from_secs(3600)), "DURATION";

    /// Also send `svix-id`, `svix-timestamp` and `svix-signature` with Standard Webhooks v1
    /// deliveries, for receivers on older Svix libraries: `true` or `false`.
    svix_headers: bool = true, "true" => bool, "BOOL";

    /// Most delivery attempts in flight at once on this node, over every endpoint (each holds
    /// a connection); endpoints wait in turn for a free slot. 1 to 100000.
    max_in_flight: usize = 2000, "2000" => whole(1, 100_000), "COUNT";

    /// Refuse endpoints (and GraphQL APIs) whose URL is plain `http`. `--require-https` alone
    /// means `true`.
    require_https: bool = false, "false"
        => bool, "BOOL" [num_args = 0..=1, default_missing_value = "true"];

    /// Days a message payload is kept before it is deleted (the message and its delivery log
    /// rows stay); messages may ask for less with `payloadRetentionPeriod`. Decimals allowed,
    /// 0.001 (86.4 s) to 36500.
    payload_retention_days: f64 = 90.0, "90" => decimal(0.001, 36_500.0), "DAYS";

    /// Days an attempt's response body is kept before it is deleted (the attempt stays).
    /// Decimals allowed, 0.001 to 36500.
    response_retention_days: f64 = 90.0, "90" => decimal(0.001, 36_500.0), "DAYS";

    /// Days a finished message is kept, with its delivery tasks and attempts, before they are
    /// all deleted (a message with a task still to deliver stays); at least
    /// --payload-retention-days. Decimals allowed, 0.001 to 36500.
    log_retention_days: f64 = 90.0, "90" => decimal(0.001, 36_500.0), "DAYS";

    /// Memory one transformation run may use (endpoints' JavaScript `handler`), in MiB; 1 to
    /// 1024.
    transformation_memory_mib: usize = 16, "16" => whole(1, 1024), "MIB";

    /// Time one transformation run may take; 1ms to 10s. A run that takes longer fails its
    /// attempt, which is retried on the schedule.
    transformation_timeout: Duration = Duration::from_millis(50), "50ms"
        => duration(Duration::from_millis(1), Duration::from_secs(10), "1ms and 10s"), "DURATION";

    /// Threads that run transformations, each with its own JavaScript runtime; 0 means one per
    /// CPU. 0 to 256.
    transformation_threads: usize = 0, "0" => whole(0, 256), "COUNT";

    /// Bearer token that `GET /metrics` requires (at least 16 characters); without it
    /// `/metrics` is open. Prefer the environment variable: flags show in `ps`.
    metrics_token: Option<Zeroizing<String>> = None
        => secret, "TOKEN" [hide_env_values = true];

    /// Label attempt metrics with the endpoint id: `true` or `false`. One series per endpoint,
    /// so keep it off with many endpoints.
    metrics_endpoint_labels: bool = false, "false" => bool, "BOOL";

    /// Stop (as on SIGTERM) when the process that started this one exits, so that a harness
    /// killed without warning leaves no server behind (`herald bench` sets it for its nodes).
    /// `--exit-with-parent` alone means `true`.
    exit_with_parent: bool = false, "false"
        => bool, "BOOL" [num_args = 0..=1, default_missing_value = "true"];
}

/// The `--help` text of an option of [`ServeSettings`]: its doc comment as clap derives it
/// from one paragraph (lines joined, the last full stop dropped), then `[default: …]` when
/// the option shows one. clap does not read a doc comment that a macro puts together, hence
/// the text is given here.
fn settings_help(doc: &[&str], default: Option<&str>) -> String {
    let text = doc
        .iter()
        .map(|line| line.trim())
        .collect::<Vec<_>>()
        .join(" ");
    match default {
        Some(default) => format!("{text} [default: {default}]"),
        None => text.strip_suffix('.').unwrap_or(&text).to_owned(),
    }
}

/// The clap id of the option that names the configuration file rather than being a setting.
const CONFIG_ID: &str = "config";

/// The environment variable of a setting: `HERALD_` and its key in capitals.
pub fn env_name(key: &str) -> String {
    format!("HERALD_{}", key.to_ascii_uppercase())
}

/// Gives every setting of a `serve`, `migrate` or `secrets rotate-key` command its environment
/// variable, so that `--help` lists it and clap reads it, telling [`ValueSource::EnvVariable`]
/// apart from the command line. Options that name their own variable keep it.
pub fn with_env_names(command: Command) -> Command {
    command.mut_args(|arg| {
        if arg.get_env().is_some() || arg.get_long().is_none() || is_clap_builtin(arg.get_id()) {
            return arg;
        }
        let name = env_name(arg.get_id().as_str());
        arg.env(name)
    })
}

/// clap adds `--help` and `--version` itself; they are no settings.
fn is_clap_builtin(id: &clap::Id) -> bool {
    matches!(id.as_str(), "help" | "version")
}

/// One setting as [`ServeSettings`] declares it.
struct Declared {
    key: String,
    flag: String,
    /// Repeatable on the command line, an array in `herald.toml`.
    list: bool,
}

/// Every setting, in declaration order.
fn declared() -> Vec<Declared> {
    let command = ServeSettings::augment_args(Command::new("serve"));
    command
        .get_arguments()
        .filter(|arg| arg.get_id() != CONFIG_ID)
        .filter_map(|arg| {
            let long = arg.get_long()?;
            Some(Declared {
                key: arg.get_id().as_str().to_owned(),
                flag: format!("--{long}"),
                list: matches!(arg.get_action(), ArgAction::Append),
            })
        })
        .collect()
}

/// The metadata name of the command-line layer.
const FLAGS: &str = "command line";
/// The metadata name of the environment layer.
const ENVIRONMENT: &str = "environment";
/// The metadata name of the file layer; its source is the file's path.
const FILE: &str = "configuration file";

/// A figment provider of settings values from one layer.
struct Layer {
    metadata: Metadata,
    values: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.values.clone()))
    }
}

/// The settings of one command invocation, merged from every layer and still unparsed.
pub struct Layers {
    figment: Figment,
    declared: Vec<Declared>,
}

impl Layers {
    /// Reads the file layer (`--config`, else `./herald.toml` when present) and takes the
    /// environment and command-line layers from `matches`, the subcommand's matches.
    pub fn new(matches: &ArgMatches, config: Option<&Path>) -> Result<Self, ConfigError> {
        let declared = declared();
        let mut figment = Figment::new();
        if let Some((path, file)) = load_file(config, &declared)? {
            // Text and lists of text: serialising them cannot fail, and gives a dictionary.
            let values = Value::serialize(&file)
                .map_err(|e| {
                    ConfigError(format!(
                        "invalid configuration file {}: {e}",
                        path.display()
                    ))
                })?
                .into_dict()
                .unwrap_or_default();
            figment = figment.merge(Layer {
                metadata: Metadata::from(FILE, path.as_path()),
                values,
            });
        }
        let from_matches = |source: ValueSource, name: &'static str| Layer {
            metadata: Metadata::named(name),
            values: from_matches(matches, source, &declared),
        };
        figment = figment
            .merge(from_matches(ValueSource::EnvVariable, ENVIRONMENT))
            .merge(from_matches(ValueSource::CommandLine, FLAGS));
        Ok(Self { figment, declared })
    }

    /// The highest-layer value of a setting and where it came from. A list setting's value is
    /// its items joined by commas, as the environment variable takes them.
    pub fn text(&self, key: &str) -> Option<(String, Origin)> {
        let (value, origin) = self.value(key)?;
        let text = match value {
            Value::Array(_, items) => items
                .into_iter()
                .filter_map(Value::into_string)
                .collect::<Vec<_>>()
                .join(","),
            other => other.into_string()?,
        };
        Some((text, origin))
    }

    /// The items of a list setting and where they came from.
    pub fn list(&self, key: &str) -> Option<(Vec<String>, Origin)> {
        let (value, origin) = self.value(key)?;
        let items = value
            .into_array()?
            .into_iter()
            .filter_map(Value::into_string)
            .collect();
        Some((items, origin))
    }

    fn value(&self, key: &str) -> Option<(Value, Origin)> {
        let value = self.figment.find_value(key).ok()?;
        if matches!(value, Value::Empty(..)) {
            return None;
        }
        let metadata = self.figment.get_metadata(value.tag())?;
        let origin = match &metadata.source {
            Some(Source::File(path)) => Origin::File(path.clone()),
            _ if metadata.name == ENVIRONMENT => Origin::Env,
            _ => Origin::Flag,
        };
        Some((value, origin))
    }

    /// How the person starting Herald names `key` in the layer `origin`.
    pub fn describe(&self, key: &str, origin: &Origin) -> String {
        let flag = self.declared.iter().find(|d| d.key == key).map_or_else(
            || format!("--{}", key.replace('_', "-")),
            |d| d.flag.clone(),
        );
        match origin {
            Origin::Flag => flag,
            Origin::Env => format!("{flag} (environment variable {})", env_name(key)),
            Origin::File(path) => format!("`{key}` in {}", path.display()),
        }
    }
}

/// The settings present in `matches` with the given source, as figment values.
fn from_matches(matches: &ArgMatches, source: ValueSource, declared: &[Declared]) -> Dict {
    let mut values = Dict::new();
    for setting in declared {
        // `ids()` holds only the arguments of this subcommand that have a value, so a setting
        // of `serve` is never looked up in the matches of `migrate`.
        if !matches.ids().any(|id| id.as_str() == setting.key)
            || matches.value_source(&setting.key) != Some(source)
        {
            continue;
        }
        let Ok(Some(items)) = matches.try_get_many::<String>(&setting.key) else {
            continue;
        };
        let items: Vec<String> = items.cloned().collect();
        let value = if setting.list {
            if items.is_empty() {
                continue;
            }
            Value::from(items)
        } else {
            match items.into_iter().next() {
                Some(item) => Value::from(item),
                None => continue,
            }
        };
        values.insert(setting.key.clone(), value);
    }
    values
}

/// The file layer: `explicit`, else `./herald.toml` when it exists. Unknown keys are errors so
/// that a typo does not silently do nothing.
fn load_file(
    explicit: Option<&Path>,
    declared: &[Declared],
) -> Result<Option<(PathBuf, ServeSettings)>, ConfigError> {
    let path = match explicit {
        Some(path) => path.to_owned(),
        None => {
            let implicit = PathBuf::from("herald.toml");
            if !implicit.is_file() {
                return Ok(None);
            }
            implicit
        }
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        ConfigError(format!(
            "cannot read the configuration file {} (--config): {e}",
            path.display()
        ))
    })?;
    // One line: the message and where, without the multi-line source excerpt.
    let invalid = |at: Option<std::ops::Range<usize>>, message: &str| {
        let line = at.map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        ConfigError(format!(
            "invalid configuration file {}{}: {}",
            path.display(),
            line.map(|l| format!(" (line {l})")).unwrap_or_default(),
            message.trim()
        ))
    };
    // serde cannot refuse unknown keys next to the flattened storage settings, so they are
    // looked for here, with the message serde gives (`deny_unknown_fields`). Of an unknown key
    // and a value of the wrong type, the first in the file is reported, as serde would.
    let table = toml::de::DeTable::parse(&text).map_err(|e| invalid(e.span(), e.message()))?;
    let unknown = table
        .get_ref()
        .keys()
        .filter(|key| !declared.iter().any(|d| d.key == **key.get_ref()))
        .min_by_key(|key| key.span().start);
    let parsed = toml::from_str::<ServeSettings>(&text);
    if let Some(key) = unknown {
        let before_type_error = match &parsed {
            Err(e) => e.span().is_none_or(|span| key.span().start < span.start),
            Ok(_) => true,
        };
        if before_type_error {
            let expected = declared
                .iter()
                .map(|d| format!("`{}`", d.key))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(invalid(
                Some(key.span()),
                &format!(
                    "unknown field `{}`, expected one of {expected}",
                    key.get_ref()
                ),
            ));
        }
    }
    let file = parsed.map_err(|e| invalid(e.span(), e.message()))?;
    Ok(Some((path, file)))
}

/// A whole number in `herald.toml`, kept as text like the other layers give it.
fn whole_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<u64>::deserialize(d)?.map(|n| n.to_string()))
}

/// A number in `herald.toml`, integer or float, kept as text like the other layers give it.
fn decimal_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.map(|n| n.to_string()))
}

/// A boolean in `herald.toml`, kept as text like the other layers give it.
fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.map(|b| b.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The matches of `serve` with `args`. The environment layer is left to the binary's tests:
    /// changing this process's environment would race the other tests.
    fn serve(args: &[&str]) -> ArgMatches {
        let command = ServeSettings::augment_args(Command::new("serve"));
        match command.try_get_matches_from(std::iter::once("serve").chain(args.iter().copied())) {
            Ok(matches) => matches,
            Err(e) => panic!("{e}"),
        }
    }

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("herald.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn every_setting_has_a_flag_and_the_config_file_is_not_one() {
        let declared = declared();
        assert!(declared.iter().all(|d| d.key != CONFIG_ID));
        let networks = declared.iter().find(|d| d.key == "allow_networks").unwrap();
        assert_eq!(networks.flag, "--allow-network");
        assert!(networks.list);
        assert_eq!(env_name("disable_after"), "HERALD_DISABLE_AFTER");
    }

    #[test]
    fn flags_beat_the_file_and_each_value_knows_its_layer() {
        let (dir, path) =
            file("listen = \"127.0.0.1:1\"\ndisable_after = \"2d\"\nmax_in_flight = 7\n");
        let layers = Layers::new(&serve(&["--listen", "127.0.0.1:2"]), Some(&path)).unwrap();
        assert_eq!(
            layers.text("listen"),
            Some(("127.0.0.1:2".into(), Origin::Flag))
        );
        assert_eq!(
            layers.text("disable_after"),
            Some(("2d".into(), Origin::File(path.clone())))
        );
        // Numbers in the file reach the resolver as the text the other layers give.
        assert_eq!(
            layers.text("max_in_flight"),
            Some(("7".into(), Origin::File(path.clone())))
        );
        assert_eq!(layers.text("shutdown_grace"), None);
        assert_eq!(
            layers.describe("listen", &Origin::Env),
            "--listen (environment variable HERALD_LISTEN)"
        );
        assert_eq!(
            layers.describe("disable_after", &Origin::File(path)),
            format!(
                "`disable_after` in {}",
                dir.path().join("herald.toml").display()
            )
        );
    }

    #[test]
    fn lists_come_whole_from_one_layer() {
        let (_dir, path) = file("allow_networks = [\"10.0.0.0/8\", \"fd00::/8\"]\n");
        let layers = Layers::new(&serve(&[]), Some(&path)).unwrap();
        assert_eq!(
            layers.list("allow_networks"),
            Some((
                vec!["10.0.0.0/8".into(), "fd00::/8".into()],
                Origin::File(path.clone())
            ))
        );
        let args = ["--allow-network", "192.168.0.0/16,10.1.0.0/16"];
        let layers = Layers::new(&serve(&args), Some(&path)).unwrap();
        assert_eq!(
            layers.list("allow_networks"),
            Some((
                vec!["192.168.0.0/16".into(), "10.1.0.0/16".into()],
                Origin::Flag
            ))
        );
    }

    #[test]
    fn the_file_is_checked_like_serde_would() {
        let message = |text: &str| {
            let (_dir, path) = file(text);
            match Layers::new(&serve(&[]), Some(&path)) {
                Ok(_) => String::new(),
                Err(e) => e.0,
            }
        };
        let unknown = message("listen = \"x\"\n\nlisen = 1\n");
        assert!(unknown.contains("(line 3): unknown field `lisen`, expected one of `data_dir`, `database_url`, `role`, `listen`, `public_url`,"), "{unknown}");
        assert!(
            message("max_body_bytes = \"5\"\n")
                .ends_with("(line 1): invalid type: string \"5\", expected u64")
        );
        // A decimal option takes a TOML integer or float, not a string.
        assert_eq!(
            message("log_retention_days = 90\npayload_retention_days = 0.5\n"),
            ""
        );
        assert!(
            message("log_retention_days = \"90\"\n")
                .ends_with("(line 1): invalid type: string \"90\", expected f64")
        );
        // The first problem in the file is the one reported.
        assert!(message("listen = 5\nlisen = 1\n").contains("invalid type: integer `5`"));
        assert!(message("config = \"other.toml\"\n").contains("unknown field `config`"));
    }
}
