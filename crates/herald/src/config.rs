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
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::cli::{ServeArgs, StorageArgs};
pub use crate::retention::RetentionConfig;

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

const DEFAULT_LISTEN: &str = "127.0.0.1:8071";
const DEFAULT_DATA_DIR: &str = "./herald-data";
const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
const DEFAULT_API_RATE_LIMIT: u32 = 1000;
const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// `herald.toml`. Unknown keys are errors so that a typo does not silently do nothing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<String>,
    database_url: Option<String>,
    role: Option<String>,
    listen: Option<String>,
    public_url: Option<String>,
    allow_networks: Option<Vec<String>>,
    max_body_bytes: Option<u64>,
    max_url_length: Option<u64>,
    max_description_length: Option<u64>,
    max_endpoints_per_app: Option<u64>,
    api_rate_limit: Option<u64>,
    client_timeout: Option<String>,
    outbound_proxy: Option<String>,
    log_format: Option<String>,
    retry_schedule: Option<String>,
    delivery_timeout: Option<String>,
    disable_after: Option<String>,
    shutdown_grace: Option<String>,
    svix_headers: Option<bool>,
    max_in_flight: Option<u64>,
    require_https: Option<bool>,
    payload_retention_days: Option<u64>,
    response_retention_days: Option<u64>,
    metrics_token: Option<String>,
    metrics_endpoint_labels: Option<bool>,
}

/// One option as the user knows it in each layer.
struct Opt {
    id: &'static str,
    flag: &'static str,
    env: &'static str,
    key: &'static str,
}

const DATA_DIR: Opt = opt("data_dir", "--data-dir", "HERALD_DATA_DIR", "data_dir");
const DATABASE_URL: Opt = opt(
    "database_url",
    "--database-url",
    "HERALD_DATABASE_URL",
    "database_url",
);
const ROLE: Opt = opt("role", "--role", "HERALD_ROLE", "role");
const LISTEN: Opt = opt("listen", "--listen", "HERALD_LISTEN", "listen");
const PUBLIC_URL: Opt = opt(
    "public_url",
    "--public-url",
    "HERALD_PUBLIC_URL",
    "public_url",
);
const ALLOW_NETWORKS: Opt = opt(
    "allow_networks",
    "--allow-network",
    "HERALD_ALLOW_NETWORKS",
    "allow_networks",
);
const MAX_BODY_BYTES: Opt = opt(
    "max_body_bytes",
    "--max-body-bytes",
    "HERALD_MAX_BODY_BYTES",
    "max_body_bytes",
);
const MAX_URL_LENGTH: Opt = opt(
    "max_url_length",
    "--max-url-length",
    "HERALD_MAX_URL_LENGTH",
    "max_url_length",
);
const MAX_DESCRIPTION_LENGTH: Opt = opt(
    "max_description_length",
    "--max-description-length",
    "HERALD_MAX_DESCRIPTION_LENGTH",
    "max_description_length",
);
const MAX_ENDPOINTS_PER_APP: Opt = opt(
    "max_endpoints_per_app",
    "--max-endpoints-per-app",
    "HERALD_MAX_ENDPOINTS_PER_APP",
    "max_endpoints_per_app",
);
const API_RATE_LIMIT: Opt = opt(
    "api_rate_limit",
    "--api-rate-limit",
    "HERALD_API_RATE_LIMIT",
    "api_rate_limit",
);
const CLIENT_TIMEOUT: Opt = opt(
    "client_timeout",
    "--client-timeout",
    "HERALD_CLIENT_TIMEOUT",
    "client_timeout",
);
const OUTBOUND_PROXY: Opt = opt(
    "outbound_proxy",
    "--outbound-proxy",
    "HERALD_OUTBOUND_PROXY",
    "outbound_proxy",
);
const LOG_FORMAT: Opt = opt(
    "log_format",
    "--log-format",
    "HERALD_LOG_FORMAT",
    "log_format",
);
const RETRY_SCHEDULE: Opt = opt(
    "retry_schedule",
    "--retry-schedule",
    "HERALD_RETRY_SCHEDULE",
    "retry_schedule",
);
const DELIVERY_TIMEOUT: Opt = opt(
    "delivery_timeout",
    "--delivery-timeout",
    "HERALD_DELIVERY_TIMEOUT",
    "delivery_timeout",
);
const DISABLE_AFTER: Opt = opt(
    "disable_after",
    "--disable-after",
    "HERALD_DISABLE_AFTER",
    "disable_after",
);
const SHUTDOWN_GRACE: Opt = opt(
    "shutdown_grace",
    "--shutdown-grace",
    "HERALD_SHUTDOWN_GRACE",
    "shutdown_grace",
);
const REQUIRE_HTTPS: Opt = opt(
    "require_https",
    "--require-https",
    "HERALD_REQUIRE_HTTPS",
    "require_https",
);
const SVIX_HEADERS: Opt = opt(
    "svix_headers",
    "--svix-headers",
    "HERALD_SVIX_HEADERS",
    "svix_headers",
);
const MAX_IN_FLIGHT: Opt = opt(
    "max_in_flight",
    "--max-in-flight",
    "HERALD_MAX_IN_FLIGHT",
    "max_in_flight",
);

const PAYLOAD_RETENTION_DAYS: Opt = opt(
    "payload_retention_days",
    "--payload-retention-days",
    "HERALD_PAYLOAD_RETENTION_DAYS",
    "payload_retention_days",
);
const RESPONSE_RETENTION_DAYS: Opt = opt(
    "response_retention_days",
    "--response-retention-days",
    "HERALD_RESPONSE_RETENTION_DAYS",
    "response_retention_days",
);
const METRICS_TOKEN: Opt = opt(
    "metrics_token",
    "--metrics-token",
    "HERALD_METRICS_TOKEN",
    "metrics_token",
);
const METRICS_ENDPOINT_LABELS: Opt = opt(
    "metrics_endpoint_labels",
    "--metrics-endpoint-labels",
    "HERALD_METRICS_ENDPOINT_LABELS",
    "metrics_endpoint_labels",
);

const fn opt(id: &'static str, flag: &'static str, env: &'static str, key: &'static str) -> Opt {
    Opt { id, flag, env, key }
}

/// Resolves layers for one command invocation. `origin_of` tells, for a clap argument id whose
/// value is set, whether it came from the command line or the environment.
pub struct Resolver<'a> {
    file: FileConfig,
    file_path: Option<PathBuf>,
    origin_of: &'a dyn Fn(&str) -> Origin,
}

impl<'a> Resolver<'a> {
    pub fn new(
        storage: &StorageArgs,
        origin_of: &'a dyn Fn(&str) -> Origin,
    ) -> Result<Self, ConfigError> {
        let (file, file_path) = load_file(storage.config.as_deref())?;
        Ok(Self {
            file,
            file_path,
            origin_of,
        })
    }

    fn describe(&self, o: &Opt, origin: &Origin) -> String {
        match origin {
            Origin::Flag => o.flag.to_owned(),
            Origin::Env => format!("{} (environment variable {})", o.flag, o.env),
            Origin::File(path) => format!("`{}` in {}", o.key, path.display()),
        }
    }

    /// The highest-precedence value of `o`: the command line or environment (`cli`), else the
    /// file, else nothing.
    fn pick(
        &self,
        o: &Opt,
        cli: Option<&String>,
        file: Option<String>,
    ) -> Option<(String, Origin)> {
        if let Some(value) = cli {
            return Some((value.clone(), (self.origin_of)(o.id)));
        }
        let path = self.file_path.clone()?;
        file.map(|v| (v, Origin::File(path)))
    }

    fn parse<T>(
        &self,
        o: &Opt,
        picked: Option<(String, Origin)>,
        default: impl FnOnce() -> T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match picked {
            None => Ok(default()),
            Some((value, origin)) => parse(value.trim()).map_err(|reason| {
                ConfigError(format!(
                    "invalid value {:?} for {}: {reason}",
                    redact_url(&value),
                    self.describe(o, &origin)
                ))
            }),
        }
    }

    pub fn storage(&self, args: &StorageArgs) -> Result<StorageConfig, ConfigError> {
        let data_dir = self.parse(
            &DATA_DIR,
            self.pick(
                &DATA_DIR,
                args.data_dir.as_ref(),
                self.file.data_dir.clone(),
            ),
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
            &DATABASE_URL,
            self.pick(
                &DATABASE_URL,
                args.database_url.as_ref(),
                self.file.database_url.clone(),
            ),
            || default_database_url(&data_dir),
            parse_database_url,
        )?;
        Ok(StorageConfig {
            data_dir,
            database_url,
        })
    }

    pub fn serve(&self, args: &ServeArgs) -> Result<Config, ConfigError> {
        let storage = self.storage(&args.storage)?;
        let sqlite =
            herald_store::backend_of(&storage.database_url) == Some(herald_store::Backend::Sqlite);
        let role = self.parse(
            &ROLE,
            self.pick(&ROLE, args.role.as_ref(), self.file.role.clone()),
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
        let listen = self.parse(
            &LISTEN,
            self.pick(&LISTEN, args.listen.as_ref(), self.file.listen.clone()),
            || DEFAULT_LISTEN.parse().expect("default address parses"),
            parse_listen,
        )?;
        let public_url = self.parse(
            &PUBLIC_URL,
            self.pick(
                &PUBLIC_URL,
                args.public_url.as_ref(),
                self.file.public_url.clone(),
            ),
            || None,
            |v| match url::Url::parse(v) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(Some(u)),
                Ok(_) => Err("must be an http or https URL".into()),
                Err(e) => Err(e.to_string()),
            },
        )?;
        let allow_networks = self.allow_networks(args)?;
        let max_body_bytes = self.size(
            &MAX_BODY_BYTES,
            args.max_body_bytes.as_ref(),
            self.file.max_body_bytes,
            DEFAULT_MAX_BODY_BYTES,
            1024,
            64 * 1024 * 1024,
        )?;
        let defaults = Limits::default();
        let max_url_length = self.size(
            &MAX_URL_LENGTH,
            args.max_url_length.as_ref(),
            self.file.max_url_length,
            defaults.max_url_length,
            16,
            65_536,
        )?;
        let max_description_length = self.size(
            &MAX_DESCRIPTION_LENGTH,
            args.max_description_length.as_ref(),
            self.file.max_description_length,
            defaults.max_description_length,
            1,
            65_536,
        )?;
        let max_endpoints_per_app = self.size(
            &MAX_ENDPOINTS_PER_APP,
            args.max_endpoints_per_app.as_ref(),
            self.file.max_endpoints_per_app,
            defaults.max_endpoints_per_app,
            1,
            1_000_000,
        )?;
        let api_rate_limit = self.size(
            &API_RATE_LIMIT,
            args.api_rate_limit.as_ref(),
            self.file.api_rate_limit,
            DEFAULT_API_RATE_LIMIT as usize,
            0,
            1_000_000,
        )? as u32;
        let client_timeout = self.parse(
            &CLIENT_TIMEOUT,
            self.pick(
                &CLIENT_TIMEOUT,
                args.client_timeout.as_ref(),
                self.file.client_timeout.clone(),
            ),
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
            &LOG_FORMAT,
            self.pick(
                &LOG_FORMAT,
                args.log_format.as_ref(),
                self.file.log_format.clone(),
            ),
            || LogFormat::Pretty,
            |v| match v {
                "pretty" => Ok(LogFormat::Pretty),
                "json" => Ok(LogFormat::Json),
                _ => Err("expected `pretty` or `json`".into()),
            },
        )?;
        let delivery = self.delivery(args)?;
        let days = |o: &Opt, cli: Option<&String>, file: Option<u64>| {
            self.size(o, cli, file, 90, 1, 36_500)
                .map(|d| u32::try_from(d).unwrap_or(u32::MAX))
        };
        let retention = RetentionConfig {
            payload_days: days(
                &PAYLOAD_RETENTION_DAYS,
                args.payload_retention_days.as_ref(),
                self.file.payload_retention_days,
            )?,
            response_days: days(
                &RESPONSE_RETENTION_DAYS,
                args.response_retention_days.as_ref(),
                self.file.response_retention_days,
            )?,
        };
        // Checked here rather than by `parse`, whose message quotes the value: a token is not
        // repeated on the terminal.
        let token = match self.pick(
            &METRICS_TOKEN,
            args.metrics_token.as_ref(),
            self.file.metrics_token.clone(),
        ) {
            None => None,
            Some((v, _)) if v.trim().is_empty() => None,
            Some((v, origin)) => {
                let v = v.trim();
                if v.len() < 16 || v.chars().any(char::is_whitespace) {
                    return Err(ConfigError(format!(
                        "invalid value for {}: must be at least 16 characters without spaces",
                        self.describe(&METRICS_TOKEN, &origin)
                    )));
                }
                Some(Zeroizing::new(v.to_owned()))
            }
        };
        let metrics = MetricsConfig {
            token,
            endpoint_labels: self.parse(
                &METRICS_ENDPOINT_LABELS,
                self.pick(
                    &METRICS_ENDPOINT_LABELS,
                    args.metrics_endpoint_labels.as_ref(),
                    self.file.metrics_endpoint_labels.map(|b| b.to_string()),
                ),
                || false,
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
            limits: Limits {
                max_url_length,
                max_description_length,
                max_endpoints_per_app,
            },
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

    fn delivery(&self, args: &ServeArgs) -> Result<DeliveryConfig, ConfigError> {
        let defaults = DeliveryConfig::default();
        let retry_schedule = self.parse(
            &RETRY_SCHEDULE,
            self.pick(
                &RETRY_SCHEDULE,
                args.retry_schedule.as_ref(),
                self.file.retry_schedule.clone(),
            ),
            || defaults.retry_schedule.clone(),
            herald_core::retry::parse_schedule,
        )?;
        let duration = |o: &Opt,
                        cli: Option<&String>,
                        file: Option<String>,
                        default: Duration,
                        min: Duration,
                        max: Duration| {
            self.parse(
                o,
                self.pick(o, cli, file),
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
            retry_schedule,
            timeout: duration(
                &DELIVERY_TIMEOUT,
                args.delivery_timeout.as_ref(),
                self.file.delivery_timeout.clone(),
                defaults.timeout,
                Duration::from_secs(1),
                Duration::from_secs(60),
            )?,
            disable_after: duration(
                &DISABLE_AFTER,
                args.disable_after.as_ref(),
                self.file.disable_after.clone(),
                defaults.disable_after,
                Duration::from_secs(60),
                Duration::from_secs(365 * 86_400),
            )?,
            shutdown_grace: duration(
                &SHUTDOWN_GRACE,
                args.shutdown_grace.as_ref(),
                self.file.shutdown_grace.clone(),
                defaults.shutdown_grace,
                Duration::ZERO,
                Duration::from_secs(3600),
            )?,
            svix_headers: self.parse(
                &SVIX_HEADERS,
                self.pick(
                    &SVIX_HEADERS,
                    args.svix_headers.as_ref(),
                    self.file.svix_headers.map(|b| b.to_string()),
                ),
                || defaults.svix_headers,
                parse_bool,
            )?,
            max_in_flight: self.size(
                &MAX_IN_FLIGHT,
                args.max_in_flight.as_ref(),
                self.file.max_in_flight,
                defaults.max_in_flight,
                1,
                100_000,
            )?,
            require_https: self.parse(
                &REQUIRE_HTTPS,
                self.pick(
                    &REQUIRE_HTTPS,
                    args.require_https.as_ref(),
                    self.file.require_https.map(|b| b.to_string()),
                ),
                || defaults.require_https,
                parse_bool,
            )?,
            outbound_proxy: self.parse(
                &OUTBOUND_PROXY,
                self.pick(
                    &OUTBOUND_PROXY,
                    args.outbound_proxy.as_ref(),
                    self.file.outbound_proxy.clone(),
                ),
                || None,
                |v| match url::Url::parse(v) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(Some(u)),
                    Ok(_) => Err("must be an http or https URL".into()),
                    Err(e) => Err(e.to_string()),
                },
            )?,
        })
    }

    fn allow_networks(&self, args: &ServeArgs) -> Result<Vec<IpNet>, ConfigError> {
        let (values, origin) = if !args.allow_networks.is_empty() {
            (
                args.allow_networks.clone(),
                (self.origin_of)(ALLOW_NETWORKS.id),
            )
        } else if let (Some(values), Some(path)) = (&self.file.allow_networks, &self.file_path) {
            (values.clone(), Origin::File(path.clone()))
        } else {
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
                        self.describe(&ALLOW_NETWORKS, &origin)
                    ))
                })
            })
            .collect()
    }

    fn size(
        &self,
        o: &Opt,
        cli: Option<&String>,
        file: Option<u64>,
        default: usize,
        min: usize,
        max: usize,
    ) -> Result<usize, ConfigError> {
        self.parse(
            o,
            self.pick(o, cli, file.map(|n| n.to_string())),
            || default,
            |v| match v.parse::<usize>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                Ok(_) => Err(format!("must be between {min} and {max}")),
                Err(_) => Err("expected a whole number".into()),
            },
        )
    }
}

fn load_file(explicit: Option<&Path>) -> Result<(FileConfig, Option<PathBuf>), ConfigError> {
    let path = match explicit {
        Some(path) => path.to_owned(),
        None => {
            let implicit = PathBuf::from("herald.toml");
            if !implicit.is_file() {
                return Ok((FileConfig::default(), None));
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
    let file = toml::from_str(&text).map_err(|e| {
        // One line: the message and where, without the multi-line source excerpt.
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        ConfigError(format!(
            "invalid configuration file {}{}: {}",
            path.display(),
            line.map(|l| format!(" (line {l})")).unwrap_or_default(),
            e.message().trim()
        ))
    })?;
    Ok((file, Some(path)))
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
