//! Broker destinations: endpoint URLs with the schemes of message brokers.
//!
//! An endpoint's URL says where a delivery goes. `http`/`https` URLs are requests; the schemes
//! below are publishes to a broker, each with the broker's own acknowledgement as the
//! "2xx" of the attempt:
//!
//! | Scheme | Publishes to | Options |
//! |---|---|---|
//! | `mqtt://`, `mqtts://` | the topic in the path (MQTT 5) | `qos` (0 or 1, default 1), `retain` |
//! | `nats://`, `tls://` | the subject in the path (JetStream when a stream holds it) | none |
//! | `amqp://`, `amqps://` | the vhost in the path | `exchange`, `routingKey` |
//! | `redis://`, `rediss://` | the database in the path | `stream` (required), `maxlen` |
//!
//! Parsing lives here, without IO, so the API (which refuses a bad URL with a 422 naming what
//! is wrong) and the worker (which connects) read a URL the same way. Credentials in a URL
//! (`user:pass@`) are secrets: [`split_credentials`] takes them out before the URL is stored,
//! and the stored URL shows [`CREDENTIALS_MASK`] in their place.

use std::fmt;
use std::net::IpAddr;

/// What replaces a URL's credentials wherever the URL is shown. Sending it back unchanged (a
/// PUT of what a GET returned) keeps the stored credentials.
pub const CREDENTIALS_MASK: &str = "****";

/// The broker a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BrokerKind {
    /// MQTT 5 (`mqtt://`, `mqtts://`).
    Mqtt,
    /// NATS, with JetStream when a stream holds the subject (`nats://`, `tls://`).
    Nats,
    /// AMQP 0-9-1, RabbitMQ's protocol (`amqp://`, `amqps://`).
    Amqp,
    /// Redis Streams (`redis://`, `rediss://`).
    Redis,
}

impl BrokerKind {
    /// The destination kind as metrics label it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Mqtt => "mqtt",
            Self::Nats => "nats",
            Self::Amqp => "amqp",
            Self::Redis => "redis",
        }
    }

    /// The kind and whether TLS is used, for a URL scheme; `None` for any other scheme.
    pub fn from_scheme(scheme: &str) -> Option<(Self, bool)> {
        Some(match scheme {
            "mqtt" => (Self::Mqtt, false),
            "mqtts" => (Self::Mqtt, true),
            "nats" => (Self::Nats, false),
            "tls" => (Self::Nats, true),
            "amqp" => (Self::Amqp, false),
            "amqps" => (Self::Amqp, true),
            "redis" => (Self::Redis, false),
            "rediss" => (Self::Redis, true),
            _ => return None,
        })
    }

    fn default_port(self, tls: bool) -> u16 {
        match (self, tls) {
            (Self::Mqtt, false) => 1883,
            (Self::Mqtt, true) => 8883,
            (Self::Nats, _) => 4222,
            (Self::Amqp, false) => 5672,
            (Self::Amqp, true) => 5671,
            (Self::Redis, _) => 6379,
        }
    }
}

/// Whether `url` has a broker scheme (whatever else is wrong with it).
pub fn is_broker_url(url: &str) -> bool {
    url.split_once("://")
        .is_some_and(|(scheme, _)| BrokerKind::from_scheme(&scheme.to_ascii_lowercase()).is_some())
}

/// The kind of destination a URL is, as metrics label it: `http`, or the broker's.
pub fn kind_label(url: &str) -> &'static str {
    url.split_once("://")
        .and_then(|(scheme, _)| BrokerKind::from_scheme(&scheme.to_ascii_lowercase()))
        .map_or("http", |(kind, _)| kind.label())
}

/// Where on the broker a delivery goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BrokerTarget {
    /// An MQTT topic (no wildcards), its QoS (0 or 1) and the retain flag.
    Mqtt {
        /// The topic.
        topic: String,
        /// 0 (at most once) or 1 (at least once: the PUBACK is success).
        qos: u8,
        /// Publish with the retain flag.
        retain: bool,
    },
    /// A NATS subject (no wildcards).
    Nats {
        /// The subject.
        subject: String,
    },
    /// An AMQP exchange and routing key (the default exchange `""` routes by queue name).
    Amqp {
        /// The exchange; empty for the default exchange.
        exchange: String,
        /// The routing key.
        routing_key: String,
    },
    /// A Redis stream, trimmed to `maxlen` entries when set.
    Redis {
        /// The stream's key.
        stream: String,
        /// `XADD … MAXLEN maxlen`: the stream keeps at most this many entries.
        maxlen: Option<u64>,
    },
}

/// A broker URL read into its parts. The credentials are not part of it: they are stored
/// sealed, apart from the URL ([`split_credentials`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BrokerUrl {
    /// Which broker.
    pub kind: BrokerKind,
    /// The TLS variant of the scheme.
    pub tls: bool,
    /// The host as written (a name, or an address; IPv6 without brackets).
    pub host: String,
    /// The port, or the scheme's default.
    pub port: u16,
    /// AMQP's virtual host, Redis's database number as text; empty for the others.
    pub namespace: String,
    /// Where the message goes.
    pub target: BrokerTarget,
}

impl BrokerUrl {
    /// The host when it is an IP address (checked by the network policy without a lookup).
    pub fn literal_ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// The Redis database number (0 unless the path names one).
    pub fn redis_db(&self) -> i64 {
        self.namespace.parse().unwrap_or(0)
    }
}

/// Why a broker URL was refused: the message names the part at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrlError(pub String);

impl fmt::Display for BrokerUrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn refuse<T>(message: impl Into<String>) -> Result<T, BrokerUrlError> {
    Err(BrokerUrlError(message.into()))
}

/// Reads a broker URL. `Ok(None)` when the scheme is not a broker's (an `http` URL, say).
/// Every query option must be one the scheme knows: an unknown one is refused, not ignored.
pub fn parse(url: &str) -> Result<Option<BrokerUrl>, BrokerUrlError> {
    let Ok(parsed) = url::Url::parse(url) else {
        if is_broker_url(url) {
            return refuse("invalid URL");
        }
        return Ok(None);
    };
    let Some((kind, tls)) = BrokerKind::from_scheme(parsed.scheme()) else {
        return Ok(None);
    };
    let host = match parsed.host() {
        Some(url::Host::Domain(name)) if !name.is_empty() => name.to_ascii_lowercase(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        _ => return refuse("URL must have a host"),
    };
    if parsed.fragment().is_some() {
        return refuse("a broker URL has no #fragment");
    }
    let port = parsed.port().unwrap_or(kind.default_port(tls));
    let path = percent_decode(parsed.path().strip_prefix('/').unwrap_or(parsed.path()))?;
    let mut options = Options::read(&parsed)?;
    let (namespace, target) = match kind {
        BrokerKind::Mqtt => {
            check_name("topic", &path, &['+', '#'])?;
            let qos = match options.take("qos").as_deref() {
                None | Some("1") => 1,
                Some("0") => 0,
                Some("2") => return refuse("qos 2 is not supported: use 0 or 1"),
                Some(other) => return refuse(format!("qos must be 0 or 1, not {other:?}")),
            };
            let retain = options.take_bool("retain")?;
            (
                String::new(),
                BrokerTarget::Mqtt {
                    topic: path,
                    qos,
                    retain,
                },
            )
        }
        BrokerKind::Nats => {
            check_name("subject", &path, &['*', '>', ' ', '\t'])?;
            if path.starts_with('.') || path.ends_with('.') || path.contains("..") {
                return refuse(
                    "the subject has an empty token (a leading, trailing or double '.')",
                );
            }
            (String::new(), BrokerTarget::Nats { subject: path })
        }
        BrokerKind::Amqp => {
            let exchange = options.take("exchange").unwrap_or_default();
            let routing_key = options.take("routingKey").unwrap_or_default();
            if exchange.is_empty() && routing_key.is_empty() {
                return refuse(
                    "name an exchange (?exchange=NAME), a routingKey, or both: the default \
                     exchange routes by routingKey to the queue of that name",
                );
            }
            if exchange.len() > 255 || routing_key.len() > 255 {
                return refuse("exchange and routingKey are at most 255 bytes");
            }
            // As in RabbitMQ's URI spec: no path is the default vhost "/".
            let vhost = if parsed.path().is_empty() || parsed.path() == "/" {
                "/".to_owned()
            } else {
                path
            };
            (
                vhost,
                BrokerTarget::Amqp {
                    exchange,
                    routing_key,
                },
            )
        }
        BrokerKind::Redis => {
            if !parsed.username().is_empty()
                && parsed.username() != CREDENTIALS_MASK
                && parsed.password().is_none()
            {
                return refuse(
                    "a Redis URL's credentials are :password@ or user:password@ (a user name \
                     alone would not be sent)",
                );
            }
            let db = if path.is_empty() {
                "0".to_owned()
            } else {
                path
            };
            if db.parse::<u16>().is_err() {
                return refuse(format!(
                    "the path is the database number (0 to 65535), not {db:?}"
                ));
            }
            let Some(stream) = options.take("stream").filter(|s| !s.is_empty()) else {
                return refuse("name the stream: ?stream=NAME");
            };
            let maxlen = match options.take("maxlen") {
                None => None,
                Some(n) => match n.parse::<u64>() {
                    Ok(n) if n > 0 => Some(n),
                    _ => return refuse(format!("maxlen must be a positive integer, not {n:?}")),
                },
            };
            (db, BrokerTarget::Redis { stream, maxlen })
        }
    };
    options.finish(kind)?;
    Ok(Some(BrokerUrl {
        kind,
        tls,
        host,
        port,
        namespace,
        target,
    }))
}

/// Checks a topic or subject: present, bounded, no wildcard and no control character.
fn check_name(what: &str, name: &str, wildcards: &[char]) -> Result<(), BrokerUrlError> {
    if name.is_empty() {
        return refuse(format!("the path must name the {what}"));
    }
    if name.len() > 1024 {
        return refuse(format!("the {what} is at most 1024 bytes"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| wildcards.contains(c) || c.is_control())
    {
        return refuse(format!(
            "the {what} must not contain {c:?}: a delivery goes to one {what}, not a pattern"
        ));
    }
    Ok(())
}

fn percent_decode(text: &str) -> Result<String, BrokerUrlError> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| BrokerUrlError("the path is not valid UTF-8 once decoded".into()))
}

/// A URL's query options, each taken once by the parser; what is left over is refused.
struct Options(Vec<(String, String)>);

impl Options {
    fn read(url: &url::Url) -> Result<Self, BrokerUrlError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (key, value) in url.query_pairs() {
            if pairs.iter().any(|(k, _)| *k == key) {
                return refuse(format!("the option {key:?} is given twice"));
            }
            pairs.push((key.into_owned(), value.into_owned()));
        }
        Ok(Self(pairs))
    }

    fn take(&mut self, key: &str) -> Option<String> {
        let at = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(at).1)
    }

    fn take_bool(&mut self, key: &str) -> Result<bool, BrokerUrlError> {
        match self.take(key).as_deref() {
            None | Some("false") => Ok(false),
            Some("true" | "") => Ok(true),
            Some(other) => refuse(format!("{key} must be true or false, not {other:?}")),
        }
    }

    fn finish(self, kind: BrokerKind) -> Result<(), BrokerUrlError> {
        let known = match kind {
            BrokerKind::Mqtt => "qos, retain",
            BrokerKind::Nats => "none",
            BrokerKind::Amqp => "exchange, routingKey",
            BrokerKind::Redis => "stream, maxlen",
        };
        match self.0.first() {
            Some((key, _)) => refuse(format!(
                "unknown option {key:?} for a {} URL (options: {known})",
                kind.label()
            )),
            None => Ok(()),
        }
    }
}

/// A broker URL's credentials, decoded.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credentials {
    /// The user name (or NATS token, when there is no password); may be empty (Redis's
    /// `redis://:password@host`).
    pub user: String,
    /// The password, when the URL had one.
    pub password: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(redacted)")
    }
}

impl Credentials {
    /// Reads the sealed form [`split_credentials`] produced (the URL's `user:pass`, still
    /// percent-encoded).
    pub fn from_userinfo(userinfo: &str) -> Self {
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (userinfo, None),
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        Self {
            user: decode(user),
            password: password.map(decode),
        }
    }
}

/// What happened to the credentials of a URL given to the API.
#[derive(Debug, PartialEq, Eq)]
pub enum GivenCredentials {
    /// The URL has none.
    None,
    /// The URL carries the mask: keep what is stored.
    Keep,
    /// New credentials: the URL's `user:pass` as written (percent-encoded).
    New(String),
}

/// Takes the credentials out of a broker URL: the URL to store (with [`CREDENTIALS_MASK`] for
/// the credentials) and what the URL said about them. A URL without a broker scheme, or that
/// does not parse, is returned as it is.
pub fn split_credentials(url: &str) -> (String, GivenCredentials) {
    if !is_broker_url(url) {
        return (url.to_owned(), GivenCredentials::None);
    }
    let Ok(mut parsed) = url::Url::parse(url) else {
        return (url.to_owned(), GivenCredentials::None);
    };
    let user = parsed.username().to_owned();
    let password = parsed.password().map(str::to_owned);
    if user.is_empty() && password.is_none() {
        return (url.to_owned(), GivenCredentials::None);
    }
    let given = if user == CREDENTIALS_MASK && password.is_none() {
        GivenCredentials::Keep
    } else {
        GivenCredentials::New(match password {
            Some(password) => format!("{user}:{password}"),
            None => user,
        })
    };
    let masked = parsed.set_password(None).is_ok() && parsed.set_username(CREDENTIALS_MASK).is_ok();
    if !masked {
        return (url.to_owned(), GivenCredentials::None);
    }
    (parsed.to_string(), given)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any text: reading it never panics; a broker URL read with credentials reads the same
        /// once they are masked, and the stored form never holds the password.
        #[test]
        fn any_url_reads_without_panicking_and_masks_round_trip(
            scheme in prop::sample::select(vec!["mqtt", "mqtts", "nats", "tls", "amqp", "amqps", "redis", "rediss", "https", "x"]),
            user in "[a-zA-Z0-9%:@._~-]{0,12}",
            password in "[a-zA-Z0-9%._~!$&'()*+,;=-]{0,12}",
            rest in "[ -~]{0,60}",
        ) {
            let url = format!("{scheme}://{user}:{password}@{rest}");
            let read = parse(&url);
            let (masked, given) = split_credentials(&url);
            if let Ok(Some(broker)) = read {
                prop_assert_eq!(parse(&masked), Ok(Some(broker)));
                if let GivenCredentials::New(_) = given {
                    let stored = url::Url::parse(&masked).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(stored.username(), CREDENTIALS_MASK);
                    prop_assert_eq!(stored.password(), None);
                }
            }
            let _ = parse(&rest);
        }
    }

    fn ok(url: &str) -> BrokerUrl {
        parse(url).unwrap().unwrap()
    }

    fn err(url: &str) -> String {
        parse(url).unwrap_err().0
    }

    #[test]
    fn each_scheme_reads_with_its_defaults() {
        let m = ok("mqtt://broker.example/devices/a%2Fb");
        assert_eq!((m.kind, m.tls, m.port), (BrokerKind::Mqtt, false, 1883));
        assert_eq!(
            m.target,
            BrokerTarget::Mqtt {
                topic: "devices/a/b".into(),
                qos: 1,
                retain: false
            }
        );
        let m = ok("mqtts://h:9000/t?qos=0&retain=true");
        assert_eq!((m.tls, m.port), (true, 9000));
        assert_eq!(
            m.target,
            BrokerTarget::Mqtt {
                topic: "t".into(),
                qos: 0,
                retain: true
            }
        );
        let n = ok("nats://127.0.0.1/orders.created");
        assert_eq!(n.literal_ip(), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(n.port, 4222);
        assert!(ok("tls://h/s").tls);
        let a = ok("amqp://h?exchange=events&routingKey=k");
        assert_eq!((a.namespace.as_str(), a.port), ("/", 5672));
        assert_eq!(ok("amqp://h/%2f?routingKey=q").namespace, "/");
        assert_eq!(ok("amqps://h/prod?routingKey=q").namespace, "prod");
        assert_eq!(ok("amqps://h/prod?routingKey=q").port, 5671);
        let r = ok("redis://[::1]/3?stream=hooks&maxlen=1000");
        assert_eq!((r.host.as_str(), r.redis_db()), ("::1", 3));
        assert_eq!(
            r.target,
            BrokerTarget::Redis {
                stream: "hooks".into(),
                maxlen: Some(1000)
            }
        );
        assert_eq!(parse("https://example.com/x").unwrap(), None);
    }

    #[test]
    fn what_cannot_work_is_refused_by_name() {
        assert!(err("mqtt://h/a/+").contains("'+'"));
        assert!(err("mqtt://h/").contains("name the topic"));
        assert!(err("mqtt://h/t?qos=2").contains("qos 2"));
        assert!(err("mqtt://h/t?qos=1&speed=9").contains("\"speed\""));
        assert!(err("nats://h/a.>").contains("'>'"));
        assert!(err("nats://h/a..b").contains("empty token"));
        assert!(err("nats://h/a?x=1").contains("\"x\""));
        assert!(err("amqp://h/").contains("routingKey"));
        assert!(err("redis://h/0").contains("stream"));
        assert!(err("redis://h/x?stream=s").contains("database number"));
        assert!(err("redis://h/0?stream=s&maxlen=0").contains("maxlen"));
        assert!(err("redis://h/0?stream=s&stream=t").contains("twice"));
        assert!(err("mqtt:///t").contains("host"));
        assert!(err("redis://user@h/0?stream=s").contains(":password@"));
    }

    #[test]
    fn credentials_leave_the_url_and_the_mask_keeps_them() {
        let (url, given) = split_credentials("amqp://guest:gu%40st@h:5672/%2f?routingKey=q");
        assert_eq!(url, "amqp://****@h:5672/%2f?routingKey=q");
        assert_eq!(given, GivenCredentials::New("guest:gu%40st".into()));
        let GivenCredentials::New(userinfo) = given else {
            unreachable!()
        };
        let c = Credentials::from_userinfo(&userinfo);
        assert_eq!(
            (c.user.as_str(), c.password.as_deref()),
            ("guest", Some("gu@st"))
        );
        assert_eq!(split_credentials(&url).1, GivenCredentials::Keep);
        assert_eq!(ok(&url), ok("amqp://h:5672/%2f?routingKey=q"));
        let (url, given) = split_credentials("redis://:secret@h/0?stream=s");
        assert_eq!(url, "redis://****@h/0?stream=s");
        assert_eq!(
            Credentials::from_userinfo(match &given {
                GivenCredentials::New(u) => u,
                _ => unreachable!(),
            })
            .password
            .as_deref(),
            Some("secret")
        );
        assert_eq!(
            split_credentials("nats://h/s"),
            ("nats://h/s".into(), GivenCredentials::None)
        );
        assert_eq!(
            split_credentials("https://u:p@h/"),
            ("https://u:p@h/".into(), GivenCredentials::None)
        );
    }
}
