//! `GET /metrics`: Prometheus text format 0.0.4, rendered by hand.
//!
//! Two sources. The token counters and the pending requests come from
//! [`Stats`] (one snapshot under its lock, so `/metrics` and `/gcm/report`
//! always agree); what only Prometheus needs (HTTP requests by route and
//! status, busy workers, calls in flight, the upstream latency histogram,
//! OAuth refreshes) lives here, in atomics, so recording it costs no lock on
//! the delivery path. The one lock, around the HTTP counters, is taken once
//! per HTTP request.
//!
//! Every label value is from a fixed set (routes, statuses gocm answers,
//! [`Reason`]s, queue names), never from client input, so cardinality stays
//! bounded and no escaping is needed.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::queue::Queue;
use crate::stats::Snapshot;
use crate::upstream::Reason;

/// The `Content-Type` of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the upstream latency buckets, in seconds: Prometheus'
/// defaults (5 ms to 10 s) plus 30 s, so that calls near the default 15 s
/// `--upstream-timeout-ms` do not all land in `+Inf`.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The Prometheus-only instruments, shared by the HTTP handlers, the
/// workers and the upstream.
#[derive(Default)]
pub struct Metrics {
    /// (route, status) → requests answered.
    http: Mutex<BTreeMap<(&'static str, u16), u64>>,
    busy_workers: AtomicUsize,
    in_flight: AtomicUsize,
    latency: Histogram,
    oauth_refreshes: AtomicU64,
    /// Indexed by `Reason as usize`.
    oauth_failures: [AtomicU64; Reason::ALL.len()],
}

/// A cumulative-on-render histogram: each observation bumps one bucket, so
/// `_count` and the `+Inf` bucket are the same sum and always agree.
#[derive(Default)]
struct Histogram {
    /// `LATENCY_BUCKETS` plus one overflow bucket (`+Inf`).
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

/// Decrements its gauge when dropped, so a panicking call cannot leave a
/// worker counted as busy forever.
pub struct GaugeGuard<'a>(&'a AtomicUsize);

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One upstream call being timed; see [`Metrics::upstream_call`].
pub struct CallTimer<'a> {
    metrics: &'a Metrics,
    started: Instant,
    _in_flight: GaugeGuard<'a>,
}

impl Drop for CallTimer<'_> {
    fn drop(&mut self) {
        self.metrics.latency.observe(self.started.elapsed());
    }
}

impl Metrics {
    /// One HTTP request answered. `route` is one of the API's routes or
    /// `"other"` (see `api::route_label`).
    pub fn http_request(&self, route: &'static str, status: u16) {
        *self.http.lock().entry((route, status)).or_default() += 1;
    }

    /// A worker took a delivery; it counts as busy until the guard drops.
    pub fn worker_busy(&self) -> GaugeGuard<'_> {
        self.busy_workers.fetch_add(1, Ordering::Relaxed);
        GaugeGuard(&self.busy_workers)
    }

    /// An upstream call started: it counts as in flight, and its latency is
    /// recorded, when the timer drops.
    pub fn upstream_call(&self) -> CallTimer<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        CallTimer {
            metrics: self,
            started: Instant::now(),
            _in_flight: GaugeGuard(&self.in_flight),
        }
    }

    /// The OAuth access token was refreshed (FCM HTTP v1).
    pub fn oauth_refreshed(&self) {
        self.oauth_refreshes.fetch_add(1, Ordering::Relaxed);
    }

    /// A refresh of the OAuth access token failed, for `reason` (`Auth`:
    /// the key was refused; `Upstream`/`Timeout`: the token endpoint failed).
    pub fn oauth_refresh_failed(&self, reason: Reason) {
        self.oauth_failures[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The whole exposition: `stats` is one snapshot of the counters,
    /// `queue` gives the depths, `workers` the pool size.
    pub fn render(&self, stats: &Snapshot, queue: &Queue, workers: usize) -> String {
        let mut out = String::with_capacity(4096);
        let o = &mut out;

        family(
            o,
            "gocm_http_requests_total",
            "counter",
            "HTTP requests answered, by route (unknown paths are \"other\") and status.",
        );
        for ((route, status), n) in self.http.lock().iter() {
            sample(
                o,
                "gocm_http_requests_total",
                &[("route", route), ("status", &status.to_string())],
                *n,
            );
        }

        let r = &stats.report;
        counter(
            o,
            "gocm_tokens_accepted_total",
            "Tokens accepted for sending, once per token (GoCM's attempts).",
            r.attempts,
        );
        counter(
            o,
            "gocm_tokens_delivered_total",
            "Tokens the upstream accepted, canonical replacements included.",
            r.delivered,
        );
        family(
            o,
            "gocm_tokens_failed_total",
            "counter",
            "Tokens that finally failed, by reason; they sum to GoCM's failures.",
        );
        sample(
            o,
            "gocm_tokens_failed_total",
            &[("reason", "not_registered")],
            r.notregistered,
        );
        for (reason, n) in stats.failed {
            sample(
                o,
                "gocm_tokens_failed_total",
                &[("reason", reason.as_str())],
                n,
            );
        }
        counter(
            o,
            "gocm_tokens_retried_total",
            "Retries scheduled, once per token per retry.",
            r.retries,
        );
        counter(
            o,
            "gocm_canonical_replacements_total",
            "Tokens delivered with a canonical ID: the client must replace them.",
            r.canonicals,
        );

        gauge(
            o,
            "gocm_requests_pending",
            "Accepted send requests not finished yet (queued, in flight or waiting for a retry).",
            r.pending as f64,
        );
        let age = stats
            .oldest_pending
            .map_or(0.0, |t| t.elapsed().as_secs_f64());
        gauge(
            o,
            "gocm_oldest_pending_age_seconds",
            "Age of the oldest unfinished send request (0 when none; recovered requests count from the start).",
            age,
        );
        family(
            o,
            "gocm_queue_depth",
            "gauge",
            "Deliveries waiting: intake (new requests) and ready (chunks, recovered work, due retries) wait for a worker; retry waits for its back-off.",
        );
        let (intake, ready, retry) = queue.depths();
        for (name, n) in [("intake", intake), ("ready", ready), ("retry", retry)] {
            sample(o, "gocm_queue_depth", &[("queue", name)], n);
        }
        gauge(
            o,
            "gocm_workers",
            "Worker threads (--workers).",
            workers as f64,
        );
        gauge(
            o,
            "gocm_workers_busy",
            "Workers handling a delivery.",
            self.busy_workers.load(Ordering::Relaxed) as f64,
        );
        gauge(
            o,
            "gocm_upstream_calls_in_flight",
            "Upstream calls under way.",
            self.in_flight.load(Ordering::Relaxed) as f64,
        );

        self.render_latency(o);

        counter(
            o,
            "gocm_oauth_token_refreshes_total",
            "OAuth access tokens obtained (FCM HTTP v1).",
            self.oauth_refreshes.load(Ordering::Relaxed),
        );
        family(
            o,
            "gocm_oauth_token_refresh_failures_total",
            "counter",
            "Failed OAuth access-token refreshes, by reason (auth: the key was refused).",
        );
        for reason in Reason::ALL {
            sample(
                o,
                "gocm_oauth_token_refresh_failures_total",
                &[("reason", reason.as_str())],
                self.oauth_failures[reason as usize].load(Ordering::Relaxed),
            );
        }

        family(
            o,
            "gocm_build_info",
            "gauge",
            "Always 1; the version is in the label.",
        );
        sample(
            o,
            "gocm_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1,
        );
        out
    }

    fn render_latency(&self, o: &mut String) {
        const NAME: &str = "gocm_upstream_call_duration_seconds";
        family(
            o,
            NAME,
            "histogram",
            "Upstream call latency, from request to last response byte, timeouts included.",
        );
        let h = &self.latency;
        let mut cumulative = 0;
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += h.buckets[i].load(Ordering::Relaxed);
            sample(
                o,
                &format!("{NAME}_bucket"),
                &[("le", &le.to_string())],
                cumulative,
            );
        }
        cumulative += h.buckets[LATENCY_BUCKETS.len()].load(Ordering::Relaxed);
        sample(o, &format!("{NAME}_bucket"), &[("le", "+Inf")], cumulative);
        let sum = h.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(o, "{NAME}_sum {sum}");
        let _ = writeln!(o, "{NAME}_count {cumulative}");
    }
}

fn family(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}");
    let _ = writeln!(o, "# TYPE {name} {kind}");
}

fn sample(o: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    o.push_str(name);
    if !labels.is_empty() {
        o.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            let _ = write!(o, "{k}=\"{v}\"");
        }
        o.push('}');
    }
    let _ = writeln!(o, " {value}");
}

fn counter(o: &mut String, name: &str, help: &str, value: u64) {
    family(o, name, "counter", help);
    sample(o, name, &[], value);
}

fn gauge(o: &mut String, name: &str, help: &str, value: f64) {
    family(o, name, "gauge", help);
    sample(o, name, &[], value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Stats;

    fn render(m: &Metrics) -> String {
        let channels = crate::queue::start(4).unwrap();
        m.render(&Stats::default().snapshot(), &channels.queue, 3)
    }

    fn value<'a>(text: &'a str, series: &str) -> &'a str {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    }

    #[test]
    fn latency_buckets_are_cumulative_and_count_matches() {
        let m = Metrics::default();
        for ms in [1, 7, 7, 300, 40_000] {
            m.latency.observe(Duration::from_millis(ms));
        }
        let t = render(&m);
        let b = |le: &str| {
            value(
                &t,
                &format!("gocm_upstream_call_duration_seconds_bucket{{le=\"{le}\"}}"),
            )
        };
        assert_eq!(b("0.005"), "1");
        assert_eq!(b("0.01"), "3");
        assert_eq!(b("0.25"), "3");
        assert_eq!(b("0.5"), "4");
        assert_eq!(b("30"), "4");
        assert_eq!(b("+Inf"), "5");
        assert_eq!(value(&t, "gocm_upstream_call_duration_seconds_count"), "5");
        assert_eq!(
            value(&t, "gocm_upstream_call_duration_seconds_sum"),
            "40.315"
        );
    }

    #[test]
    fn oauth_hooks_reach_the_output() {
        let m = Metrics::default();
        m.oauth_refreshed();
        m.oauth_refreshed();
        m.oauth_refresh_failed(Reason::Auth);
        let t = render(&m);
        assert_eq!(value(&t, "gocm_oauth_token_refreshes_total"), "2");
        assert_eq!(
            value(
                &t,
                "gocm_oauth_token_refresh_failures_total{reason=\"auth\"}"
            ),
            "1"
        );
        assert_eq!(
            value(
                &t,
                "gocm_oauth_token_refresh_failures_total{reason=\"upstream\"}"
            ),
            "0"
        );
    }

    #[test]
    fn guards_give_back_their_gauge() {
        let m = Metrics::default();
        {
            let _busy = m.worker_busy();
            let _call = m.upstream_call();
            let t = render(&m);
            assert_eq!(value(&t, "gocm_workers_busy"), "1");
            assert_eq!(value(&t, "gocm_upstream_calls_in_flight"), "1");
        }
        let t = render(&m);
        assert_eq!(value(&t, "gocm_workers_busy"), "0");
        assert_eq!(value(&t, "gocm_upstream_calls_in_flight"), "0");
        assert_eq!(value(&t, "gocm_upstream_call_duration_seconds_count"), "1");
        assert_eq!(value(&t, "gocm_workers"), "3");
    }
}
