//! An endpoint's deliveries over time: the API's statistics route asked once per time bucket,
//! drawn as an inline SVG bar chart (no chart library, nothing fetched), with the same figures
//! in a table for screen readers.

use chrono::{DateTime, Duration, DurationRound, Utc};
use maud::{Markup, html};

use super::client::query;
use super::error::PortalError;
use super::session::Ctx;
use super::view;
use crate::api::delivery::EndpointStats;

/// One bucket's deliveries, by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    pub start: DateTime<Utc>,
    pub success: u64,
    pub fail: u64,
    pub waiting: u64,
}

/// The buckets of a range: `24h` (hourly), `7d` (six-hourly) or `30d` (daily).
pub fn buckets(range: &str, now: DateTime<Utc>) -> (Duration, Vec<DateTime<Utc>>) {
    let (step, n) = match range {
        "7d" => (Duration::hours(6), 28),
        "30d" => (Duration::days(1), 30),
        _ => (Duration::hours(1), 24),
    };
    let last = now.duration_trunc(step).unwrap_or(now);
    let starts = (0..n).rev().map(|i| last - step * i).collect();
    (step, starts)
}

/// The statistics section of an endpoint's page. `stats` is the API path of its statistics,
/// `here` the page's own path (for the range links).
pub async fn section(
    ctx: &Ctx,
    stats: &str,
    here: &str,
    range: Option<&str>,
) -> Result<Markup, PortalError> {
    let range = range
        .filter(|r| matches!(*r, "7d" | "30d"))
        .unwrap_or("24h");
    let (step, starts) = buckets(range, herald_core::time::now());
    let calls = starts.iter().map(|start| {
        let since = start.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let until = (*start + step).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let path = format!("{stats}{}", query(&[("since", &since), ("until", &until)]));
        async move { ctx.api.get_as::<EndpointStats>(&path).await }
    });
    let answers = futures::future::join_all(calls).await;
    let mut data = Vec::with_capacity(starts.len());
    for (start, answer) in starts.iter().zip(answers) {
        let v = answer.map_err(|r| ctx.fail(r))?;
        data.push(Bucket {
            start: *start,
            success: v.success,
            fail: v.fail,
            waiting: v.pending + v.sending,
        });
    }
    let total = |f: fn(&Bucket) -> u64| data.iter().map(f).sum::<u64>();
    let label = |b: &Bucket| {
        if step >= Duration::days(1) {
            b.start.format("%m-%d").to_string()
        } else if range == "24h" {
            b.start.format("%H:00").to_string()
        } else {
            b.start.format("%m-%d %H:00").to_string()
        }
    };
    Ok(html! {
        section aria-labelledby="stats" {
            h2 #stats { "Deliveries" }
            nav.ranges aria-label="Time range" {
                @for (r, text) in [("24h", "24 hours"), ("7d", "7 days"), ("30d", "30 days")] {
                    @if r == range { span aria-current="true" { (text) } }
                    @else { a href={ (here) "?range=" (r) } { (text) } }
                }
            }
            p.totals {
                span.badge.ok { (total(|b| b.success)) " succeeded" } " "
                span.badge.bad { (total(|b| b.fail)) " failed" } " "
                span.badge.wait { (total(|b| b.waiting)) " pending" }
                span.hint { " (messages created in the last " (range) ", UTC)" }
            }
            (view::raw_svg(chart(&data, label)))
            details {
                summary { "Figures" }
                table {
                    thead { tr { th scope="col" { "From (UTC)" } th scope="col" { "Succeeded" } th scope="col" { "Failed" } th scope="col" { "Pending" } } }
                    tbody {
                        @for b in &data {
                            tr { td { (b.start.format("%Y-%m-%d %H:%M")) } td { (b.success) } td { (b.fail) } td { (b.waiting) } }
                        }
                    }
                }
            }
        }
    })
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A stacked bar per bucket: successes at the bottom, then failures, then pending.
pub fn chart(data: &[Bucket], label: impl Fn(&Bucket) -> String) -> String {
    const W: f64 = 720.0;
    const H: f64 = 200.0;
    const LEFT: f64 = 36.0;
    const BOTTOM: f64 = 24.0;
    const TOP: f64 = 8.0;
    let plot_w = W - LEFT - 4.0;
    let plot_h = H - BOTTOM - TOP;
    let max = data
        .iter()
        .map(|b| b.success + b.fail + b.waiting)
        .max()
        .unwrap_or(0)
        .max(1);
    let slot = plot_w / data.len().max(1) as f64;
    let bar = (slot - 2.0).max(1.0);
    let y = |v: u64| v as f64 / max as f64 * plot_h;
    let every = (data.len() / 8).max(1);
    let mut svg = format!(
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-labelledby="chart-title"><title id="chart-title">Deliveries over time: successes, failures and pending per interval</title>"#
    );
    svg.push_str(&format!(
        r#"<line class="axis" x1="{LEFT}" y1="{base}" x2="{W}" y2="{base}"/><text class="tick" x="{lx}" y="{base}" text-anchor="end">0</text><text class="tick" x="{lx}" y="{top}" text-anchor="end">{max}</text>"#,
        base = TOP + plot_h,
        lx = LEFT - 4.0,
        top = TOP + 8.0,
    ));
    for (i, b) in data.iter().enumerate() {
        let x = LEFT + i as f64 * slot + 1.0;
        let mut bottom = TOP + plot_h;
        let name = escape(&label(b));
        svg.push_str(&format!(
            "<g><title>{name}: {} succeeded, {} failed, {} pending</title>",
            b.success, b.fail, b.waiting
        ));
        for (value, class) in [
            (b.success, "s-ok"),
            (b.fail, "s-bad"),
            (b.waiting, "s-wait"),
        ] {
            if value == 0 {
                continue;
            }
            let h = y(value);
            bottom -= h;
            svg.push_str(&format!(
                r#"<rect class="{class}" x="{x:.1}" y="{bottom:.1}" width="{bar:.1}" height="{h:.1}"/>"#
            ));
        }
        // An invisible full-height target, so the tooltip shows over empty intervals too.
        svg.push_str(&format!(
            r#"<rect class="hit" x="{x:.1}" y="{TOP}" width="{bar:.1}" height="{plot_h}"/></g>"#
        ));
        if i % every == 0 {
            svg.push_str(&format!(
                r#"<text class="tick" x="{:.1}" y="{}" text-anchor="middle">{name}</text>"#,
                x + bar / 2.0,
                H - 6.0
            ));
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_end_with_the_current_interval() {
        let now = "2026-03-10T16:15:50Z".parse::<DateTime<Utc>>().unwrap();
        let (step, starts) = buckets("24h", now);
        assert_eq!(step, Duration::hours(1));
        assert_eq!(starts.len(), 24);
        assert_eq!(starts[23].to_rfc3339(), "2026-03-10T16:00:00+00:00");
        assert_eq!(starts[0].to_rfc3339(), "2026-03-09T17:00:00+00:00");
        let (_, starts) = buckets("30d", now);
        assert_eq!(starts[29].to_rfc3339(), "2026-03-10T00:00:00+00:00");
    }

    #[test]
    fn bars_stack_to_the_bucket_totals() {
        let start = "2026-03-10T16:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let data = [Bucket {
            start,
            success: 3,
            fail: 1,
            waiting: 0,
        }];
        let svg = chart(&data, |_| "16:00".into());
        assert!(svg.contains("3 succeeded, 1 failed, 0 pending"));
        assert_eq!(svg.matches("class=\"s-ok\"").count(), 1);
        assert_eq!(svg.matches("class=\"s-bad\"").count(), 1);
        assert!(!svg.contains("s-wait\" x"));
    }
}
