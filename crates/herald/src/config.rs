//! Layered configuration: built-in defaults < `herald.toml` < `HERALD_*` environment < flags.
//!
//! Everything is resolved and validated before anything is started or created, so a bad value
//! stops Herald with one message that names the option and where the value came from, and
//! exit code 2 (see `main.rs`), with no data directory or database half-initialised.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use herald_core::validate::Limits;
use ipnet::IpNet;
use zeroize::Zeroizing;

pub use crate::retention::RetentionConfig;

#[macro_use]
mod declare;
mod settings;

use settings::Layers;
pub use settings::{
    SHORTEST_LEASE, ServeOptions, ServeSettings, StorageSettings, env_name, with_env_names,
};

/// Where a setting's value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Flag,
    Env,
    File(PathBuf),
}

/// A configuration problem, phrased for the person starting Herald.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// What a `herald serve` process runs. Several processes on one Postgres database can split
/// the work: API nodes behind a load balancer, worker nodes delivering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The management API only: publishes are stored and announced, other nodes deliver.
    Api,
    /// The delivery worker only, plus the health routes for load balancers and orchestrators.
    Worker,
    /// Both (the default, and the only choice on SQLite).
    All,
}

impl Role {
    pub fn serves_api(self) -> bool {
        matches!(self, Role::Api | Role::All)
    }

    pub fn delivers(self) -> bool {
        matches!(self, Role::Worker | Role::All)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Settings of `herald migrate` and the storage half of `herald serve`.
#[derive(Clone)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    pub database_url: String,
}

impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageConfig")
            .field("data_dir", &self.data_dir)
            .field("database_url", &redact_url(&self.database_url))
            .finish()
    }
}

/// A URL with its password replaced, for messages and logs.
pub fn redact_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("redacted"));
            parsed.to_string()
        }
        _ => text.to_owned(),
    }
}

/// Everything `herald serve` needs, validated.
#[derive(Clone)]
pub struct Config {
    pub storage: StorageConfig,
    /// Postgres pool size and statement timeout.
    pub database: herald_store::DatabaseOptions,
    pub role: Role,
    pub listen: SocketAddr,
    pub public_url: Option<url::Url>,
    pub allow_networks: Vec<IpNet>,
    pub max_body_bytes: usize,
    pub limits: Limits,
    /// Requests per second each API token may make (0: unlimited).
    pub api_rate_limit: u32,
    /// Time a client has to send a request's headers, and then its body; also how long an idle
    /// keep-alive connection stays open.
    pub client_timeout: Duration,
    pub log_format: LogFormat,
    pub delivery: DeliveryConfig,
    pub transformations: TransformationConfig,
    pub retention: RetentionConfig,
    pub metrics: MetricsConfig,
    pub admin_token: Option<Zeroizing<String>>,
    pub encryption_key: Option<Zeroizing<String>>,
    pub encryption_old_keys: Vec<Zeroizing<String>>,
    /// Stop when the parent process exits.
    pub exit_with_parent: bool,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("storage", &self.storage)
            .field("database", &self.database)
            .field("role", &self.role)
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("allow_networks", &self.allow_networks)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("limits", &self.limits)
            .field("api_rate_limit", &self.api_rate_limit)
            .field("client_timeout", &self.client_timeout)
            .field("log_format", &self.log_format)
            .field("delivery", &self.delivery)
            .field("transformations", &self.transformations)
            .field("retention", &self.retention)
            .field("metrics", &self.metrics)
            .field("exit_with_parent", &self.exit_with_parent)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// A configuration for tests and embedding: everything default, state in `data_dir`,
    /// listening on a free loopback port.
    pub fn for_data_dir(data_dir: &Path) -> Self {
        let storage = StorageConfig {
            database_url: default_database_url(data_dir),
            data_dir: data_dir.to_owned(),
        };
        let options = ServeOptions {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            ..ServeOptions::default()
        };
        let secrets = EnvSecrets {
            admin_token: None,
            encryption_key: None,
            encryption_old_keys: Vec::new(),
        };
        Self::new(storage, options, secrets)
    }

    /// Where each resolved option goes.
    fn new(storage: StorageConfig, options: ServeOptions, secrets: EnvSecrets) -> Self {
        let exit_with_parent = options.exit_with_parent;
        let metrics = MetricsConfig {
            token: options.metrics_token.clone(),
            endpoint_labels: options.metrics_endpoint_labels,
        };
        Self {
            storage,
            database: herald_store::DatabaseOptions {
                pool_size: options.database_pool_size,
                statement_timeout: (!options.database_statement_timeout.is_zero())
                    .then_some(options.database_statement_timeout),
            },
            role: options.role,
            listen: options.listen,
            public_url: options.public_url.clone(),
            allow_networks: options.allow_networks.clone(),
            max_body_bytes: options.max_body_bytes,
            limits: Limits {
                max_url_length: options.max_url_length,
                max_description_length: options.max_description_length,
                max_endpoints_per_app: options.max_endpoints_per_app,
            },
            api_rate_limit: options.api_rate_limit,
            client_timeout: options.client_timeout,
            log_format: options.log_format,
            retention: RetentionConfig {
                payload_days: options.payload_retention_days,
                response_days: options.response_retention_days,
                log_days: options.log_retention_days,
            },
            metrics,
            transformations: TransformationConfig::from(&options),
            delivery: DeliveryConfig::from(options),
            admin_token: secrets.admin_token,
            encryption_key: secrets.encryption_key,
            encryption_old_keys: secrets.encryption_old_keys,
            exit_with_parent,
        }
    }
}

/// `GET /metrics` settings.
#[derive(Clone)]
pub struct MetricsConfig {
    /// When set, `/metrics` needs `Authorization: Bearer <token>`.
    pub token: Option<Zeroizing<String>>,
    /// Label attempt metrics with the endpoint id.
    pub endpoint_labels: bool,
}

impl std::fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsConfig")
            .field("token", &self.token.as_ref().map(|_| "redacted"))
            .field("endpoint_labels", &self.endpoint_labels)
            .finish()
    }
}

/// Transformation settings of `herald serve`: the sandbox's limits and threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransformationConfig {
    pub limits: herald_transform::Limits,
    /// Sandbox threads; one per CPU when the option is 0.
    pub threads: usize,
}

impl From<&ServeOptions> for TransformationConfig {
    fn from(options: &ServeOptions) -> Self {
        Self {
            limits: herald_transform::Limits {
                memory_bytes: options.transformation_memory_mib * 1024 * 1024,
                time: options.transformation_timeout,
            },
            threads: match options.transformation_threads {
                0 => std::thread::available_parallelism().map_or(1, usize::from),
                n => n,
            },
        }
    }
}

impl Default for TransformationConfig {
    fn default() -> Self {
        Self::from(&ServeOptions::default())
    }
}

/// Delivery settings of `herald serve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryConfig {
    pub retry_schedule: Vec<Duration>,
    pub timeout: Duration,
    /// Endpoint ownership lease (`--lease-duration`).
    pub lease_duration: Duration,
    pub disable_after: Duration,
    pub shutdown_grace: Duration,
    pub svix_headers: bool,
    /// Most attempts in flight at once on this node.
    pub max_in_flight: usize,
    /// Endpoint URLs must be `https` (checked when endpoints are saved).
    pub require_https: bool,
    /// Send every delivery through this HTTP proxy, which then owns the network policy.
    pub outbound_proxy: Option<url::Url>,
}

impl From<ServeOptions> for DeliveryConfig {
    fn from(options: ServeOptions) -> Self {
        Self {
            retry_schedule: options.retry_schedule,
            timeout: options.delivery_timeout,
            lease_duration: options.lease_duration,
            disable_after: options.disable_after,
            shutdown_grace: options.shutdown_grace,
            svix_headers: options.svix_headers,
            max_in_flight: options.max_in_flight,
            require_https: options.require_https,
            outbound_proxy: options.outbound_proxy,
        }
    }
}

impl Default for DeliveryConfig {
    /// The defaults of the options.
    fn default() -> Self {
        Self::from(ServeOptions::default())
    }
}

/// Implemented here, not next to the type: the defaults are those of the options.
impl Default for RetentionConfig {
    fn default() -> Self {
        let options = ServeOptions::default();
        Self {
            payload_days: options.payload_retention_days,
            response_days: options.response_retention_days,
            log_days: options.log_retention_days,
        }
    }
}

const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8071);
const DEFAULT_DATA_DIR: &str = "./herald-data";

/// Resolves the layers of one command invocation into validated settings. Each option is
/// looked up by its key (the field name in [`ServeSettings`]; the options of `herald serve` by
/// the resolver that [`ServeOptions`] is generated with); a bad value is reported with the
/// option's name in the layer it came from.
pub struct Resolver {
    layers: Layers,
}

impl Resolver {
    /// `matches` are the subcommand's, `config` its `--config`.
    pub fn new(matches: &clap::ArgMatches, config: Option<&Path>) -> Result<Self, ConfigError> {
        Ok(Self {
            layers: Layers::new(matches, config)?,
        })
    }

    /// The highest-layer value of `key`, if any layer has one.
    fn pick(&self, key: &str) -> Option<(String, Origin)> {
        self.layers.text(key)
    }

    fn parse<T>(
        &self,
        key: &str,
        default: impl FnOnce() -> T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match self.pick(key) {
            None => Ok(default()),
            Some((value, origin)) => parse(value.trim()).map_err(|reason| {
                ConfigError(format!(
                    "invalid value {:?} for {}: {reason}",
                    redact_url(&value),
                    self.layers.describe(key, &origin)
                ))
            }),
        }
    }

    pub fn storage(&self) -> Result<StorageConfig, ConfigError> {
        let data_dir = self.parse(
            "data_dir",
            || PathBuf::from(DEFAULT_DATA_DIR),
            |v| {
                if v.is_empty() {
                    Err("must not be empty".into())
                } else {
                    Ok(PathBuf::from(v))
                }
            },
        )?;
        let database_url = self.parse(
            "database_url",
            || default_database_url(&data_dir),
            parse_database_url,
        )?;
        Ok(StorageConfig {
            data_dir,
            database_url,
        })
    }

    pub fn serve(&self) -> Result<Config, ConfigError> {
        let storage = self.storage()?;
        let options = ServeOptions::resolve(self, &storage)?;
        self.check_retention(&options)?;
        let secrets = secrets_from_env()?;
        Ok(Config::new(storage, options, secrets))
    }

    /// The log retention deletes messages, so it cannot end before their payloads' retention:
    /// a message is never deleted while its payload is meant to be kept.
    fn check_retention(&self, options: &ServeOptions) -> Result<(), ConfigError> {
        if options.log_retention_days >= options.payload_retention_days {
            return Ok(());
        }
        let named = |key: &str, days: f64| match self.pick(key) {
            Some((_, origin)) => format!("{}: {days} days", self.layers.describe(key, &origin)),
            None => format!("--{}: {days} days, the default", key.replace('_', "-")),
        };
        Err(ConfigError(format!(
            "the log retention ({}) is shorter than the payload retention ({}); it must be at \
             least as long, since messages are deleted with their delivery logs",
            named("log_retention_days", options.log_retention_days),
            named("payload_retention_days", options.payload_retention_days),
        )))
    }

    /// The items of a list option, each parsed, or `default` when no layer has one.
    fn list<T>(
        &self,
        key: &str,
        default: impl FnOnce() -> Vec<T>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Vec<T>, ConfigError> {
        let Some((values, origin)) = self.layers.list(key) else {
            return Ok(default());
        };
        values
            .iter()
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(|v| {
                parse(v).map_err(|reason| {
                    ConfigError(format!(
                        "invalid value {v:?} for {}: {reason}",
                        self.layers.describe(key, &origin)
                    ))
                })
            })
            .collect()
    }

    /// A token option. Checked here rather than by `parse`, whose message quotes the value: a
    /// token is not repeated on the terminal.
    fn secret(&self, key: &str) -> Result<Option<Zeroizing<String>>, ConfigError> {
        match self.pick(key) {
            None => Ok(None),
            Some((v, _)) if v.trim().is_empty() => Ok(None),
            Some((v, origin)) => {
                let v = v.trim();
                if v.len() < 16 || v.chars().any(char::is_whitespace) {
                    return Err(ConfigError(format!(
                        "invalid value for {}: must be at least 16 characters without spaces",
                        self.layers.describe(key, &origin)
                    )));
                }
                Ok(Some(Zeroizing::new(v.to_owned())))
            }
        }
    }
}

/// `--role`: SQLite serves one process, which must run both halves.
fn parse_role(v: &str, storage: &StorageConfig) -> Result<Role, String> {
    let role = match v {
        "api" => Role::Api,
        "worker" => Role::Worker,
        "all" => Role::All,
        _ => return Err("expected `api`, `worker` or `all`".into()),
    };
    let sqlite =
        herald_store::backend_of(&storage.database_url) == Some(herald_store::Backend::Sqlite);
    if sqlite && role != Role::All {
        return Err(
            "a SQLite database serves one process, which must run both the \
                    API and the worker (`all`); use Postgres for separate roles"
                .into(),
        );
    }
    Ok(role)
}

fn parse_log_format(v: &str) -> Result<LogFormat, String> {
    match v {
        "pretty" => Ok(LogFormat::Pretty),
        "json" => Ok(LogFormat::Json),
        _ => Err("expected `pretty` or `json`".into()),
    }
}

/// A duration option within `min..=max`; the error message shows the bounds as `bounds` when
/// given, else as [`Duration`]'s `Debug` does.
fn duration(
    min: Duration,
    max: Duration,
    bounds: Option<&'static str>,
) -> impl Fn(&str) -> Result<Duration, String> {
    move |v| {
        let d = herald_core::retry::parse_duration(v)?;
        if d < min || d > max {
            return Err(match bounds {
                Some(bounds) => format!("must be between {bounds}"),
                None => format!("must be between {min:?} and {max:?}"),
            });
        }
        Ok(d)
    }
}

/// A whole-number option within `min..=max`, read as a `usize` whatever its type so that the
/// messages do not depend on the type.
fn whole<T: TryFrom<usize>>(min: usize, max: usize) -> impl Fn(&str) -> Result<T, String> {
    move |v| match v.parse::<usize>() {
        // Within the bounds, which fit the option's type.
        Ok(n) if (min..=max).contains(&n) => {
            T::try_from(n).map_err(|_| format!("must be between {min} and {max}"))
        }
        Ok(_) => Err(format!("must be between {min} and {max}")),
        Err(_) => Err("expected a whole number".into()),
    }
}

/// A decimal option within `min..=max` (`90`, `0.5`, `1e-3`); never NaN or infinite.
fn decimal(min: f64, max: f64) -> impl Fn(&str) -> Result<f64, String> {
    move |v| match v.trim().parse::<f64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        Ok(_) => Err(format!("must be between {min} and {max}")),
        Err(_) => Err("expected a number".into()),
    }
}

/// Whether the options of a Postgres database may be given.
fn postgres_only(storage: &StorageConfig) -> Result<(), String> {
    match herald_store::backend_of(&storage.database_url) {
        Some(herald_store::Backend::Postgres) => Ok(()),
        _ => Err("applies to Postgres only (the database is SQLite)".into()),
    }
}

fn parse_pool_size(v: &str, storage: &StorageConfig) -> Result<u32, String> {
    let size = whole::<u32>(2, 1000)(v)?;
    postgres_only(storage)?;
    Ok(size)
}

fn parse_statement_timeout(v: &str, storage: &StorageConfig) -> Result<Duration, String> {
    let timeout = herald_core::retry::parse_duration(v)?;
    if !timeout.is_zero()
        && !(Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&timeout)
    {
        return Err("must be 0s, or between 100ms and 1h".into());
    }
    postgres_only(storage)?;
    Ok(timeout)
}

fn parse_http_url(v: &str) -> Result<Option<url::Url>, String> {
    match url::Url::parse(v) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(Some(u)),
        Ok(_) => Err("must be an http or https URL".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn default_database_url(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join("herald.db").display())
}

fn parse_database_url(v: &str) -> Result<String, String> {
    const EXPECTED: &str = "expected sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE";
    match v.split_once("://") {
        Some(("sqlite", rest)) if !rest.is_empty() => Ok(v.to_owned()),
        Some(("postgres" | "postgresql", rest)) if !rest.is_empty() => {
            url::Url::parse(v).map_err(|e| format!("{e}; {EXPECTED}"))?;
            Ok(v.to_owned())
        }
        _ => Err(EXPECTED.into()),
    }
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

fn parse_listen(v: &str) -> Result<SocketAddr, String> {
    if let Some(port) = v.strip_prefix("localhost:") {
        let port: u16 = port.parse().map_err(|_| format!("invalid port {port:?}"))?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    v.parse()
        .map_err(|_| "expected IP:PORT, e.g. 127.0.0.1:8071 or [::1]:8071".into())
}

/// A CIDR block, or a single address (a /32 or /128).
pub fn parse_network(v: &str) -> Result<IpNet, String> {
    if let Ok(net) = v.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    v.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| "expected a CIDR block such as 10.0.0.0/8 or fd00::/8, or an address".into())
}

/// The secrets Herald takes from its environment, validated.
pub struct EnvSecrets {
    pub admin_token: Option<Zeroizing<String>>,
    /// `HERALD_ENCRYPTION_KEY`.
    pub encryption_key: Option<Zeroizing<String>>,
    /// `HERALD_ENCRYPTION_OLD_KEYS`.
    pub encryption_old_keys: Vec<Zeroizing<String>>,
}

/// Secrets are read only from the environment: flags would show them in `ps`, files would need
/// their own permissions story.
pub fn secrets_from_env() -> Result<EnvSecrets, ConfigError> {
    let read = |name: &str| -> Result<Option<Zeroizing<String>>, ConfigError> {
        match std::env::var(name) {
            Ok(v) if v.trim().is_empty() => Ok(None),
            Ok(v) => Ok(Some(Zeroizing::new(v.trim().to_owned()))),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError(format!(
                "the environment variable {name} is not valid UTF-8"
            ))),
        }
    };
    let admin_token = read("HERALD_ADMIN_TOKEN")?;
    if let Some(token) = &admin_token
        && (token.len() < 16 || token.chars().any(char::is_whitespace))
    {
        return Err(ConfigError(
            "invalid value for HERALD_ADMIN_TOKEN: must be at least 16 characters without spaces"
                .into(),
        ));
    }
    let check_key = |name: &str, key: &str| {
        herald_core::crypto::DataKey::from_base64(key)
            .map(|_| ())
            .map_err(|e| ConfigError(format!("invalid value for {name}: {e}")))
    };
    let encryption_key = read("HERALD_ENCRYPTION_KEY")?;
    if let Some(key) = &encryption_key {
        check_key("HERALD_ENCRYPTION_KEY", key)?;
    }
    let mut old_keys = Vec::new();
    if let Some(list) = read("HERALD_ENCRYPTION_OLD_KEYS")? {
        for key in list.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            check_key("HERALD_ENCRYPTION_OLD_KEYS", key)?;
            old_keys.push(Zeroizing::new(key.to_owned()));
        }
    }
    Ok(EnvSecrets {
        admin_token,
        encryption_key,
        encryption_old_keys: old_keys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen("127.0.0.1:8071").unwrap().port(), 8071);
        assert_eq!(parse_listen("[::1]:0").unwrap().port(), 0);
        assert!(parse_listen("localhost:8071").unwrap().ip().is_loopback());
        assert!(parse_listen("nonsense").is_err());
        assert!(parse_listen("127.0.0.1").is_err());
    }

    #[test]
    fn retention_days_take_decimals_within_bounds() {
        let days = decimal(0.001, 36_500.0);
        assert_eq!(days("90"), Ok(90.0));
        assert_eq!(days("0.5"), Ok(0.5));
        assert_eq!(days("1e-3"), Ok(0.001));
        for bad in ["0.0009", "0", "-1", "36500.5", "NaN", "inf", "ninety", ""] {
            assert!(days(bad).is_err(), "{bad} was accepted");
        }
        assert_eq!(
            crate::retention::period(0.001),
            chrono::Duration::milliseconds(86_400)
        );
        assert_eq!(crate::retention::period(90.0), chrono::Duration::days(90));
    }

    #[test]
    fn networks() {
        assert_eq!(
            parse_network("10.1.2.3/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(parse_network("::1").unwrap().to_string(), "::1/128");
        assert!(parse_network("10.0.0.0/33").is_err());
        assert!(parse_network("banana").is_err());
    }

    #[test]
    fn database_urls() {
        assert!(parse_database_url("sqlite://./x.db").is_ok());
        assert!(parse_database_url("postgres://herald:pw@db:5432/herald").is_ok());
        assert!(parse_database_url("postgresql://db/herald").is_ok());
        assert!(parse_database_url("postgres://").is_err());
        assert!(parse_database_url("mysql://x").is_err());
        assert!(parse_database_url("sqlite://").is_err());
    }
}
