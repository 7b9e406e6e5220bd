//! The outbound network policy end to end: every refused address form, DNS rebinding,
//! redirects and the outbound proxy. Receivers listen where the refused addresses point when
//! those are on this machine, and must see no connection.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use herald::outbound::{Lookup, Outbound};
use herald_core::model::DeliveryStatus;
use herald_core::net::NetworkPolicy;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;
use crate::receiver::{Receiver, Step};

/// `answer(host, n)`: the answer to the `n`th lookup.
type Answer = Box<dyn Fn(&str, usize) -> Vec<IpAddr> + Send + Sync>;

/// A resolver the test controls.
struct StubDns {
    answer: Answer,
    lookups: Arc<AtomicUsize>,
}

impl Lookup for StubDns {
    fn lookup(
        &self,
        host: String,
    ) -> futures::future::BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
        let n = self.lookups.fetch_add(1, Ordering::SeqCst);
        let answer = (self.answer)(&host, n);
        Box::pin(async move { Ok(answer) })
    }
}

/// Starts Herald whose deliveries resolve through `answer` and may reach only `allow`.
async fn herald_with_dns(
    allow: &[&str],
    answer: impl Fn(&str, usize) -> Vec<IpAddr> + Send + Sync + 'static,
) -> (TestApp, Arc<AtomicUsize>) {
    let allow: Vec<ipnet::IpNet> = allow.iter().map(|n| n.parse().unwrap()).collect();
    let lookups = Arc::new(AtomicUsize::new(0));
    let stub = StubDns {
        answer: Box::new(answer),
        lookups: lookups.clone(),
    };
    let for_config = allow.clone();
    let t = TestApp::spawn_adjusted(
        move |c| c.allow_networks = for_config,
        move |app| {
            app.set_outbound(Outbound::new(
                NetworkPolicy::new(allow),
                Arc::new(stub),
                64 * 1024,
            ))
        },
    )
    .await;
    (t, lookups)
}

/// Waits until every delivery of `msg` is finished and returns them.
async fn finished(t: &TestApp, msg: &str, count: usize) -> Vec<herald_store::Delivery> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let deliveries = t.deliveries(msg).await;
        if deliveries.len() == count
            && deliveries
                .iter()
                .all(|d| matches!(d.status, DeliveryStatus::Success | DeliveryStatus::Fail))
        {
            return deliveries;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "deliveries of {msg} did not finish: {deliveries:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every address form the policy refuses, each as a URL's literal host. Those that are on this
/// machine (loopback, the unspecified address, IPv4 loopback inside IPv6) point at the
/// receivers.
const REFUSED_HOSTS: &[&str] = &[
    // IPv4 loopback in every spelling a URL parser normalizes.
    "127.0.0.1",
    "2130706433",
    "0177.0.0.1",
    "0x7f000001",
    "0x7f.1",
    "127.1",
    "127.0.1",
    "0.0.0.0",
    "0",
    // IPv6 loopback and unspecified, and IPv4 loopback embedded in IPv6.
    "[::1]",
    "[::]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[::127.0.0.1]",
    "[64:ff9b::127.0.0.1]",
    "[2002:7f00:1::1]",
    "[2001:0:4136:e378:8000:63bf:80ff:fffe]",
    // Private, shared, link-local (with cloud metadata), multicast, broadcast, reserved,
    // benchmarking and documentation ranges.
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",
    "169.254.169.254",
    "224.0.0.1",
    "255.255.255.255",
    "240.0.0.1",
    "198.18.0.1",
    "192.0.2.1",
    "198.51.100.1",
    "203.0.113.1",
    "[::ffff:10.0.0.1]",
    "[::ffff:169.254.169.254]",
    "[2002:a9fe:a9fe::]",
    "[fe80::1]",
    "[fc00::1]",
    "[fd12:3456::1]",
    "[ff02::1]",
    "[2001:db8::1]",
];

fn literal_ip(host: &str) -> IpAddr {
    match url::Url::parse(&format!("http://{host}/")).unwrap().host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        other => panic!("{host} is not an address: {other:?}"),
    }
}

/// Binds receivers on 127.0.0.1 and ::1 with one port (retrying when the port is taken on ::1).
async fn loopback_receivers() -> (Receiver, Option<Receiver>) {
    for _ in 0..20 {
        let v4 = Receiver::start().await;
        let v6_addr = SocketAddr::new("::1".parse().unwrap(), v4.addr.port());
        match Receiver::start_at(v6_addr).await {
            Ok(v6) => return (v4, Some(v6)),
            // No IPv6 loopback on this machine: the v4 receiver still watches.
            Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => return (v4, None),
            Err(_) => continue,
        }
    }
    panic!("no port free on both 127.0.0.1 and ::1");
}

#[tokio::test]
async fn every_refused_address_form_is_refused_as_a_literal_and_as_a_dns_answer() {
    let (v4, v6) = loopback_receivers().await;
    let port = v4.addr.port();
    let by_name: HashMap<String, IpAddr> = REFUSED_HOSTS
        .iter()
        .enumerate()
        .map(|(i, host)| (format!("form-{i}.test"), literal_ip(host)))
        .collect();
    let answers = by_name.clone();
    let (t, _) = herald_with_dns(&[], move |host, _| {
        answers.get(host).into_iter().copied().collect()
    })
    .await;
    let app = t.create_app("Acme").await;

    // As literals: refused when the endpoint is saved, with the reason.
    for host in REFUSED_HOSTS {
        let url = format!("http://{host}:{port}/hook");
        let (status, body) = t
            .post(&format!("/api/v1/app/{app}/endpoint"), json!({"url": url}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {body}");
        let text = body.to_string();
        assert!(
            text.contains("refused by the network policy") && text.contains("--allow-network"),
            "{url}: {text}"
        );
    }

    // As DNS answers: saved (a name cannot be judged then), refused at delivery with the
    // address and the reason recorded on the attempt.
    let mut endpoint_ip = HashMap::new();
    for (name, ip) in &by_name {
        let ep = t
            .create_endpoint(
                &app,
                json!({"url": format!("http://{name}:{port}/hook"), "retrySchedule": []}),
            )
            .await;
        endpoint_ip.insert(ep, *ip);
    }
    let msg = t
        .publish(&app, json!({"eventType": "probe", "payload": {}}))
        .await;
    let deliveries = finished(&t, &msg, by_name.len()).await;
    assert!(
        deliveries.iter().all(|d| d.status == DeliveryStatus::Fail),
        "{deliveries:?}"
    );
    let attempts = t.attempts(&msg).await;
    assert_eq!(attempts.len(), by_name.len());
    for attempt in attempts {
        let ip = endpoint_ip[attempt.endpoint_id.as_str()];
        let error = attempt.error.unwrap_or_default();
        assert_eq!(attempt.status_code, 0, "{ip}");
        // The resolved address is not named: that would map the operator's network for
        // whoever owns the endpoint.
        assert!(
            error.contains("refused by the network policy") && !error.contains(&ip.to_string()),
            "{ip}: {error}"
        );
    }

    assert_eq!(v4.connections(), 0, "a connection reached 127.0.0.1");
    if let Some(v6) = v6 {
        assert_eq!(v6.connections(), 0, "a connection reached ::1");
    }
    t.stop().await;
}

/// Two receivers on one port: `public` on 127.0.0.2 (the only network Herald may reach here,
/// standing in for the internet) and `internal` on 127.0.0.1.
async fn public_and_internal() -> (Receiver, Receiver) {
    for _ in 0..20 {
        let public = Receiver::start_at("127.0.0.2:0".parse().unwrap())
            .await
            .expect("127.0.0.2 is loopback on Linux");
        let internal_addr = SocketAddr::new([127, 0, 0, 1].into(), public.addr.port());
        if let Ok(internal) = Receiver::start_at(internal_addr).await {
            return (public, internal);
        }
    }
    panic!("no port free on both 127.0.0.2 and 127.0.0.1");
}

#[tokio::test]
async fn dns_rebinding_never_reaches_a_refused_address() {
    let (public, internal) = public_and_internal().await;
    // Close each connection so that every delivery resolves the name again.
    public.always(
        "/hook",
        Step::Respond(200, vec![("connection", "close".into())], "ok".into()),
    );
    let public_ip: IpAddr = [127, 0, 0, 2].into();
    let internal_ip: IpAddr = [127, 0, 0, 1].into();
    // The attacker's DNS: first a public answer, then a mixed one, then only the internal one.
    let (t, lookups) = herald_with_dns(&["127.0.0.2/32"], move |_, n| match n {
        0 => vec![public_ip],
        1 => vec![internal_ip, public_ip],
        _ => vec![internal_ip],
    })
    .await;
    let app = t.create_app("Acme").await;
    let url = format!("http://rebind.test:{}/hook", public.addr.port());
    let ep = t
        .create_endpoint(&app, json!({"url": url, "retrySchedule": []}))
        .await;
    let mut outcomes = Vec::new();
    for i in 0..4 {
        let msg = t
            .publish(&app, json!({"eventType": "e", "payload": {"i": i}}))
            .await;
        let d = finished(&t, &msg, 1).await.remove(0);
        assert_eq!(d.endpoint_id.as_str(), ep);
        let attempt = t.attempts(&msg).await.remove(0);
        outcomes.push((d.status, attempt.error.unwrap_or_default()));
    }
    assert_eq!(outcomes[0].0, DeliveryStatus::Success, "{outcomes:?}");
    // The mixed answer connects to its allowed address only.
    assert_eq!(outcomes[1].0, DeliveryStatus::Success, "{outcomes:?}");
    for (status, error) in &outcomes[2..] {
        assert_eq!(*status, DeliveryStatus::Fail);
        assert!(
            error.contains("refused by the network policy") && !error.contains("127.0.0.1"),
            "{error}"
        );
    }
    assert_eq!(public.received("/hook").len(), 2);
    assert_eq!(internal.connections(), 0, "a connection reached 127.0.0.1");
    // One lookup per attempt: the connection goes to an address that was checked, never to a
    // second answer.
    assert_eq!(lookups.load(Ordering::SeqCst), 4);
    t.stop().await;
}

#[tokio::test]
async fn redirects_to_refused_addresses_are_not_followed() {
    let (public, internal) = public_and_internal().await;
    let (t, _) = herald_with_dns(&["127.0.0.2/32"], |_, _| Vec::new()).await;
    let app = t.create_app("Acme").await;
    for (path, status, target) in [
        ("/to-internal", 307, internal.url("/admin")),
        (
            "/to-metadata",
            302,
            "http://169.254.169.254/latest/meta-data".into(),
        ),
        ("/to-self", 308, public.url("/landing")),
    ] {
        public.always(
            path,
            Step::Respond(status, vec![("location", target)], String::new()),
        );
        let event = &path[1..];
        let ep = t
            .create_endpoint(
                &app,
                json!({"url": public.url(path), "eventTypes": [event], "retrySchedule": []}),
            )
            .await;
        let msg = t
            .publish(&app, json!({"eventType": event, "payload": {}}))
            .await;
        let d = finished(&t, &msg, 1).await.remove(0);
        assert_eq!(d.endpoint_id.as_str(), ep);
        assert_eq!(d.status, DeliveryStatus::Fail, "{path}");
        assert_eq!(t.attempts(&msg).await[0].status_code, status, "{path}");
    }
    assert!(
        public.received("/landing").is_empty(),
        "a redirect was followed"
    );
    assert_eq!(internal.connections(), 0, "a redirect reached 127.0.0.1");
    t.stop().await;
}

#[tokio::test]
async fn an_outbound_proxy_carries_every_delivery() {
    // The operator's proxy, on a private address Herald's own policy would refuse.
    let proxy = Receiver::start().await;
    let proxy_url: url::Url = format!("http://{}", proxy.addr).parse().unwrap();
    let t = TestApp::spawn_with(move |c| {
        c.allow_networks.clear();
        c.delivery.outbound_proxy = Some(proxy_url);
    })
    .await;
    let app = t.create_app("Acme").await;
    // The proxy resolves names: this one exists only behind it.
    let ep = t
        .create_endpoint(&app, json!({"url": "http://hooks.customer.test/in"}))
        .await;
    let msg = t
        .publish(&app, json!({"eventType": "e", "payload": {"via": "proxy"}}))
        .await;
    let d = t
        .wait_status(&msg, &ep, DeliveryStatus::Success, Duration::from_secs(10))
        .await;
    assert_eq!(d.attempts, 1);
    // An HTTP proxy gets the absolute URL in the request line.
    let seen = proxy.received("http://hooks.customer.test/in");
    assert_eq!(seen.len(), 1, "{:?}", proxy.all_received());
    assert!(seen[0].header("webhook-signature").is_some());
    assert_eq!(seen[0].header("host"), Some("hooks.customer.test"));
    // Literal addresses are still Herald's to refuse.
    let (status, _) = t
        .post(
            &format!("/api/v1/app/{app}/endpoint"),
            json!({"url": "http://169.254.169.254/"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    t.stop().await;
}
