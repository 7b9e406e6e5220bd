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

mod settings;

use settings::Layers;
pub use settings::{ServeSettings, StorageSettings, env_name, with_env_names};

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
    pub retention: RetentionConfig,
    pub metrics: MetricsConfig,
    pub admin_token: Option<Zeroizing<String>>,
    pub encryption_key: Option<Zeroizing<String>>,
    pub encryption_old_keys: Vec<Zeroizing<String>>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("storage", &self.storage)
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
            .field("retention", &self.retention)
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// A configuration for tests and embedding: everything default, state in `data_dir`,
    /// listening on a free loopback port.
    pub fn for_data_dir(data_dir: &Path) -> Self {
        Self {
            storage: StorageConfig {
                database_url: default_database_url(data_dir),
                data_dir: data_dir.to_owned(),
            },
            role: Role::All,
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            public_url: None,
            allow_networks: Vec::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            limits: Limits::default(),
            api_rate_limit: DEFAULT_API_RATE_LIMIT,
            client_timeout: DEFAULT_CLIENT_TIMEOUT,
            log_format: LogFormat::Pretty,
            delivery: DeliveryConfig::default(),
            retention: RetentionConfig::default(),
            metrics: MetricsConfig::default(),
            admin_token: None,
            encryption_key: None,
            encryption_old_keys: Vec::new(),
        }
    }
}

/// `GET /metrics` settings.
#[derive(Clone, Default)]
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

/// Delivery settings of `herald serve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryConfig {
    pub retry_schedule: Vec<Duration>,
    pub timeout: Duration,
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

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            retry_schedule: herald_core::retry::DEFAULT_SCHEDULE.to_vec(),
            timeout: Duration::from_secs(15),
            disable_after: Duration::from_secs(5 * 86_400),
            shutdown_grace: Duration::from_secs(30),
            svix_headers: true,
            max_in_flight: 2000,
            require_https: false,
            outbound_proxy: None,
        }
    }
}

const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8071);
const DEFAULT_DATA_DIR: &str = "./herald-data";
const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
const DEFAULT_API_RATE_LIMIT: u32 = 1000;
const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Resolves the layers of one command invocation into validated settings. Each option is
/// looked up by its key (the field name in [`ServeSettings`]); a bad value is reported with
/// the option's name in the layer it came from.
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
        let sqlite =
            herald_store::backend_of(&storage.database_url) == Some(herald_store::Backend::Sqlite);
        let role = self.parse(
            "role",
            || Role::All,
            |v| {
                let role = match v {
                    "api" => Role::Api,
                    "worker" => Role::Worker,
                    "all" => Role::All,
                    _ => return Err("expected `api`, `worker` or `all`".into()),
                };
                if sqlite && role != Role::All {
                    return Err(
                        "a SQLite database serves one process, which must run both the \
                                API and the worker (`all`); use Postgres for separate roles"
                            .into(),
                    );
                }
                Ok(role)
            },
        )?;
        let listen = self.parse("listen", || DEFAULT_LISTEN, parse_listen)?;
        let public_url = self.parse("public_url", || None, parse_http_url)?;
        let allow_networks = self.allow_networks()?;
        let max_body_bytes = self.size(
            "max_body_bytes",
            DEFAULT_MAX_BODY_BYTES,
            1024,
            64 * 1024 * 1024,
        )?;
        let defaults = Limits::default();
        let limits = Limits {
            max_url_length: self.size("max_url_length", defaults.max_url_length, 16, 65_536)?,
            max_description_length: self.size(
                "max_description_length",
                defaults.max_description_length,
                1,
                65_536,
            )?,
            max_endpoints_per_app: self.size(
                "max_endpoints_per_app",
                defaults.max_endpoints_per_app,
                1,
                1_000_000,
            )?,
        };
        let api_rate_limit = self.size(
            "api_rate_limit",
            DEFAULT_API_RATE_LIMIT as usize,
            0,
            1_000_000,
        )? as u32;
        let client_timeout = self.parse(
            "client_timeout",
            || DEFAULT_CLIENT_TIMEOUT,
            |v| {
                let d = herald_core::retry::parse_duration(v)?;
                if d < Duration::from_secs(1) || d > Duration::from_secs(3600) {
                    return Err("must be between 1s and 1h".into());
                }
                Ok(d)
            },
        )?;
        let log_format = self.parse(
            "log_format",
            || LogFormat::Pretty,
            |v| match v {
                "pretty" => Ok(LogFormat::Pretty),
                "json" => Ok(LogFormat::Json),
                _ => Err("expected `pretty` or `json`".into()),
            },
        )?;
        let delivery = self.delivery()?;
        let retention_defaults = RetentionConfig::default();
        let days = |key: &str, default: u32| {
            self.size(key, default as usize, 1, 36_500)
                .map(|d| u32::try_from(d).unwrap_or(u32::MAX))
        };
        let retention = RetentionConfig {
            payload_days: days("payload_retention_days", retention_defaults.payload_days)?,
            response_days: days("response_retention_days", retention_defaults.response_days)?,
        };
        // Checked here rather than by `parse`, whose message quotes the value: a token is not
        // repeated on the terminal.
        let token = match self.pick("metrics_token") {
            None => None,
            Some((v, _)) if v.trim().is_empty() => None,
            Some((v, origin)) => {
                let v = v.trim();
                if v.len() < 16 || v.chars().any(char::is_whitespace) {
                    return Err(ConfigError(format!(
                        "invalid value for {}: must be at least 16 characters without spaces",
                        self.layers.describe("metrics_token", &origin)
                    )));
                }
                Some(Zeroizing::new(v.to_owned()))
            }
        };
        let metrics = MetricsConfig {
            token,
            endpoint_labels: self.parse(
                "metrics_endpoint_labels",
                || MetricsConfig::default().endpoint_labels,
                parse_bool,
            )?,
        };
        let EnvSecrets {
            admin_token,
            encryption_key,
            encryption_old_keys,
        } = secrets_from_env()?;
        Ok(Config {
            storage,
            role,
            listen,
            public_url,
            allow_networks,
            max_body_bytes,
            limits,
            api_rate_limit,
            client_timeout,
            log_format,
            delivery,
            retention,
            metrics,
            admin_token,
            encryption_key,
            encryption_old_keys,
        })
    }

    fn delivery(&self) -> Result<DeliveryConfig, ConfigError> {
        let defaults = DeliveryConfig::default();
        let duration = |key: &str, default: Duration, min: Duration, max: Duration| {
            self.parse(
                key,
                || default,
                |v| {
                    let d = herald_core::retry::parse_duration(v)?;
                    if d < min || d > max {
                        return Err(format!("must be between {min:?} and {max:?}"));
                    }
                    Ok(d)
                },
            )
        };
        Ok(DeliveryConfig {
            retry_schedule: self.parse(
                "retry_schedule",
                || defaults.retry_schedule.clone(),
                herald_core::retry::parse_schedule,
            )?,
            timeout: duration(
                "delivery_timeout",
                defaults.timeout,
                Duration::from_secs(1),
                Duration::from_secs(60),
            )?,
            disable_after: duration(
                "disable_after",
                defaults.disable_after,
                Duration::from_secs(60),
                Duration::from_secs(365 * 86_400),
            )?,
            shutdown_grace: duration(
                "shutdown_grace",
                defaults.shutdown_grace,
                Duration::ZERO,
                Duration::from_secs(3600),
            )?,
            svix_headers: self.parse("svix_headers", || defaults.svix_headers, parse_bool)?,
            max_in_flight: self.size("max_in_flight", defaults.max_in_flight, 1, 100_000)?,
            require_https: self.parse("require_https", || defaults.require_https, parse_bool)?,
            outbound_proxy: self.parse("outbound_proxy", || None, parse_http_url)?,
        })
    }

    fn allow_networks(&self) -> Result<Vec<IpNet>, ConfigError> {
        const KEY: &str = "allow_networks";
        let Some((values, origin)) = self.layers.list(KEY) else {
            return Ok(Vec::new());
        };
        values
            .iter()
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(|v| {
                parse_network(v).map_err(|reason| {
                    ConfigError(format!(
                        "invalid value {v:?} for {}: {reason}",
                        self.layers.describe(KEY, &origin)
                    ))
                })
            })
            .collect()
    }

    fn size(
        &self,
        key: &str,
        default: usize,
        min: usize,
        max: usize,
    ) -> Result<usize, ConfigError> {
        self.parse(
            key,
            || default,
            |v| match v.parse::<usize>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                Ok(_) => Err(format!("must be between {min} and {max}")),
                Err(_) => Err("expected a whole number".into()),
            },
        )
    }
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
