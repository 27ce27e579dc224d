//! `cargo bench`: ingest and delivery figures, each beside a ceiling
//! measured in the same run, printed as ratios. No assertions: speed is
//! measured here, not in the tests.
//!
//! Set `GOCM_BENCH_SECS` (default 2) to change how long each ingest run lasts,
//! `GOCM_BENCH_ONLY` to `memory`, `ingest`, `delivery`, `v1` or `v1-quota` (the
//! 1250-worker runs alone) to run one part, `GOCM_BENCH_WORKERS` (default 512)
//! to change the worker count of the 512-worker runs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gocm::config::Config;
use gocm::Relay;
use mock_fcm::{MockFcm, MockOptions};

/// Keep-alive client connections in the ingest and delivery runs (gocm's
/// default `--http-threads` is as many): a busy backend has many app-server
/// threads posting at once, and group commit only helps when requests
/// arrive together.
const CLIENTS: usize = 32;

/// Ingest runs each configuration this many times, interleaved.
const ROUNDS: usize = 3;

fn main() {
    let secs: u64 = std::env::var("GOCM_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    println!(
        "gocm benchmarks ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let only = std::env::var("GOCM_BENCH_ONLY").unwrap_or_default();
    let workers: usize = std::env::var("GOCM_BENCH_WORKERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(512);
    // First, while the process is fresh, so that its RSS means something.
    if only.is_empty() || only == "memory" {
        full_queue_memory(100_000);
    }
    if only.is_empty() || only == "ingest" {
        // Group commit fills with concurrent senders: measured at three sizes.
        ingest(Duration::from_secs(secs), CLIENTS);
        ingest(Duration::from_secs(secs), 2 * CLIENTS);
        ingest(Duration::from_secs(secs), 4 * CLIENTS);
    }
    if only.is_empty() || only == "delivery" {
        let ms100 = Duration::from_millis(100);
        delivery(Proto::Legacy, Duration::ZERO, workers, 20_000, 1, false);
        delivery(Proto::Legacy, ms100, workers, 20_000, 1, false);
        delivery(Proto::Legacy, ms100, workers, 20_000, 1, true);
    }
    if only.is_empty() || only == "v1" || only == "v1-quota" {
        let ms100 = Duration::from_millis(100);
        if only != "v1-quota" {
            delivery(Proto::V1, Duration::ZERO, workers, 20_000, 1, true);
            delivery(Proto::V1, ms100, workers, 20_000, 1, true);
        }
        // FCM's default quota, 600,000 messages a minute, is 10,000/s: at
        // 100 ms that takes the README's 1.25 x rate x latency = 1250 workers.
        // v1 sends one call per token, so a send to 10 devices is 10
        // messages: with 1-token sends every message is also a durable
        // intake, which the in-memory run shows the price of.
        delivery(Proto::V1, ms100, 1250, 40_000, 1, true);
        delivery(Proto::V1, ms100, 1250, 40_000, 1, false);
        delivery(Proto::V1, ms100, 1250, 64_000, 10, true);
    }

    println!(
        "peak RSS of this process (relay + mock + clients): {} MiB",
        peak_rss_mib()
    );
}

// ---------------------------------------------------------------- ingest --

/// Keep-alive clients posting 1-token sends: gocm against a bare tiny_http
/// responder (same socket options, same handler threads) that reads the
/// body and answers `ok`.
fn ingest(run: Duration, clients: usize) {
    // As many handler threads as clients, for gocm and the bare responder.
    println!(
        "\n## ingest: {clients} keep-alive clients, 1-token form sends, {clients} handler threads \
         ({ROUNDS} rounds of bare / in-memory / durable, {} s each, fresh relays each round: \
         this machine's speed drifts, so ratios are taken within a round; figures are medians)",
        run.as_secs_f64()
    );
    let bare = BareResponder::start(clients);
    // The upstream answers after a minute and few workers exist, so the
    // intake is measured, not delivery.
    let mock = MockFcm::start(MockOptions {
        latency: Duration::from_secs(60),
        ..MockOptions::default()
    });
    let threads = clients.to_string();
    let stalled = [
        "--http-threads",
        &threads,
        "--workers",
        "2",
        "--queue-size",
        "10000000",
        "--max-pending",
        "10000000",
        "--upstream-timeout-ms",
        "1000",
        "--retries",
        "0",
    ];
    let mut rounds = Vec::new();
    for i in 1..=ROUNDS {
        // Fresh relays each round: with the upstream stalled every accepted
        // request stays pending, and a backlog carried over from earlier
        // rounds (far beyond the default --max-pending) would weigh on the
        // later ones.
        let memory_relay = start_relay(&mock, &stalled, None);
        let dir = TempDir::new(&format!("ingest-{clients}-{i}"));
        let durable_relay = start_relay(&mock, &stalled, Some(&dir.0));
        let ceiling = hammer(bare.addr, run, clients);
        let memory = hammer(memory_relay.addr(), run, clients);
        let durable = hammer(durable_relay.addr(), run, clients);
        drop(durable_relay);
        drop(memory_relay);
        println!(
            "{:<28} bare {:>6.0}, in-memory {:>6.0} ({:.2}), durable {:>6.0} ({:.2} of in-memory) req/s",
            format!("round {i}"),
            ceiling.rate(),
            memory.rate(),
            memory.rate() / ceiling.rate(),
            durable.rate(),
            durable.rate() / memory.rate()
        );
        rounds.push([ceiling, memory, durable]);
    }
    let median_run = |k: usize| {
        let mut runs: Vec<&RunResult> = rounds.iter().map(|r| &r[k]).collect();
        runs.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
        runs[runs.len() / 2]
    };
    let median_ratio = |num: usize, den: usize| {
        let mut v: Vec<f64> = rounds
            .iter()
            .map(|r| r[num].rate() / r[den].rate())
            .collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    print_run("bare tiny_http responder", median_run(0), "");
    print_run(
        "gocm, queue in memory",
        median_run(1),
        &format!("  ratio {:.2} of the bare responder", median_ratio(1, 0)),
    );
    print_run(
        "gocm, durable queue",
        median_run(2),
        &format!("  ratio {:.2} of the bare responder", median_ratio(2, 0)),
    );
    println!(
        "{:<28} durable / in-memory = {:.2} (group commit: one fsync serves many requests)",
        "",
        median_ratio(2, 1)
    );
    bare.stop();
}

/// A folder under the system temp dir, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("gocm-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Memory with `n` accepted 1-token requests waiting on a stalled upstream.
fn full_queue_memory(n: usize) {
    println!("\n## memory: {n} pending 1-token requests, upstream stalled");
    let mock = MockFcm::start(MockOptions {
        latency: Duration::from_secs(600),
        ..MockOptions::default()
    });
    let max = n.to_string();
    let dir = TempDir::new("memory");
    let relay = start_relay(
        &mock,
        &[
            "--workers",
            "4",
            "--queue-size",
            &max,
            "--max-pending",
            &max,
            "--upstream-timeout-ms",
            "900000",
            "--shutdown-timeout-ms",
            "100",
        ],
        Some(&dir.0),
    );
    let before = rss_mib();
    let addr = relay.addr();
    let per = n / CLIENTS;
    let posters: Vec<_> = (0..CLIENTS)
        .map(|c| {
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr);
                for i in 0..per {
                    conn.post(
                        "/gcm/send",
                        &format!("tokens=mem-{c}-{i}&payload=%7B%22k%22%3A%22v%22%7D"),
                    );
                }
            })
        })
        .collect();
    for p in posters {
        p.join().unwrap();
    }
    let after = rss_mib();
    let mut conn = Conn::open(addr);
    let refused = conn.post("/gcm/send", "tokens=one-more&payload=%7B%7D");
    println!(
        "{:<28} RSS {before} MiB -> {after} MiB ({:.0} bytes per pending request); one more send: HTTP {refused}",
        "gocm, durable queue",
        (after.saturating_sub(before) as f64 * 1048576.0) / n as f64
    );
    drop(relay);
}

struct RunResult {
    requests: u64,
    elapsed: Duration,
    /// CPU time of this whole process (server and clients) during the run.
    cpu: Duration,
    /// Of which the server's own threads (gocm's or the bare responder's).
    server_cpu: Duration,
    latencies: Vec<Duration>,
}

impl RunResult {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    fn pct(&self, p: f64) -> Duration {
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i]
    }
}

fn print_run(name: &str, r: &RunResult, ratio: &str) {
    println!(
        "{name:<28} {:>9.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  CPU {:>3.0} us/req (server {:>3.0}){ratio}",
        r.rate(),
        r.pct(0.50).as_secs_f64() * 1e3,
        r.pct(0.99).as_secs_f64() * 1e3,
        r.cpu.as_secs_f64() * 1e6 / r.requests.max(1) as f64,
        r.server_cpu.as_secs_f64() * 1e6 / r.requests.max(1) as f64,
    );
}

/// `clients` threads, one keep-alive connection each, posting for `run`.
fn hammer(addr: SocketAddr, run: Duration, clients: usize) -> RunResult {
    let stop = Arc::new(AtomicBool::new(false));
    let cpu_before = CpuParts::now();
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr);
                let mut lat = Vec::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let body = format!("tokens=bench-{c}-{i}&payload=%7B%22n%22%3A{i}%7D");
                    let t = Instant::now();
                    let status = conn.post("/gcm/send", &body);
                    lat.push(t.elapsed());
                    assert_eq!(status, 200, "ingest request refused");
                    i += 1;
                }
                lat
            })
        })
        .collect();
    std::thread::sleep(run);
    stop.store(true, Ordering::Relaxed);
    let mut latencies: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let elapsed = start.elapsed();
    let cpu = CpuParts::between(&cpu_before, &CpuParts::now());
    latencies.sort_unstable();
    RunResult {
        requests: latencies.len() as u64,
        elapsed,
        cpu: cpu.total,
        server_cpu: cpu.relay + cpu.bare,
        latencies,
    }
}

/// A minimal HTTP/1.1 keep-alive client: the cheapest way to load a
/// server, so the client's own cost stays small and identical for both.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        Conn {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
        }
    }

    fn post(&mut self, path: &str, body: &str) -> u16 {
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.writer.write_all(req.as_bytes()).unwrap();
        self.read_response()
    }

    fn read_response(&mut self) -> u16 {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut len = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body).unwrap();
        status
    }
}

struct BareResponder {
    addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl BareResponder {
    fn start(threads: usize) -> BareResponder {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        socket2::SockRef::from(&l).set_tcp_nodelay(true).unwrap();
        let addr = l.local_addr().unwrap();
        // Created from a named thread, as gocm's and the mock's are, so that
        // its connection threads are counted as its own (see `CpuParts`).
        let server = std::thread::Builder::new()
            .name("bare-conn".into())
            .spawn(move || tiny_http::Server::from_listener(l, None).unwrap())
            .unwrap()
            .join()
            .unwrap();
        let server = Arc::new(server);
        let threads = (0..threads)
            .map(|i| {
                let server = server.clone();
                std::thread::Builder::new()
                    .name(format!("bare-http-{i}"))
                    .spawn(move || {
                        while let Ok(mut rq) = server.recv() {
                            let mut body = Vec::new();
                            rq.as_reader().read_to_end(&mut body).unwrap();
                            let _ = rq.respond(tiny_http::Response::from_string("ok\n"));
                        }
                    })
                    .unwrap()
            })
            .collect();
        BareResponder {
            addr,
            server,
            threads,
        }
    }

    fn stop(self) {
        for _ in &self.threads {
            self.server.unblock();
        }
        for t in self.threads {
            t.join().unwrap();
        }
    }
}

// -------------------------------------------------------------- delivery --

/// `messages` tokens, `per_send` to a send, through gocm to the mock at
/// `latency`: messages (tokens delivered)/s from the first post until the
/// last delivery, and TCP
/// connections the mock saw. Ceiling at 0 ms: the mock's own rate, loaded
/// directly by `workers` keep-alive clients; at >0 ms: `workers / latency`.
#[derive(Clone, Copy, PartialEq)]
enum Proto {
    Legacy,
    V1,
}

fn delivery(
    proto: Proto,
    latency: Duration,
    workers: usize,
    messages: usize,
    per_send: usize,
    durable: bool,
) {
    println!(
        "\n## delivery, {}: {messages} messages in {per_send}-token sends, mock latency {} ms, --workers {workers}, queue {}",
        if proto == Proto::V1 { "FCM HTTP v1" } else { "legacy" },
        latency.as_millis(),
        if durable { "durable" } else { "in memory" }
    );
    let rss_before = rss_mib();
    let mock = MockFcm::start(MockOptions {
        latency,
        ..MockOptions::test_service_account()
    });
    let ceiling = if latency.is_zero() {
        let r = mock_rate(&mock, workers.min(64), Duration::from_secs(2));
        println!(
            "{:<28} {r:>9.0} msg/s  (64 direct keep-alive clients, legacy requests, no relay)",
            "mock's own rate"
        );
        r
    } else {
        let r = workers as f64 / latency.as_secs_f64();
        println!("{:<28} {r:>9.0} msg/s  (workers / latency)", "ideal");
        r
    };
    // At a latency, the mock on this same machine may not reach the ideal
    // itself: measure it with as many direct clients as gocm has workers.
    let mock_ceiling = (!latency.is_zero()).then(|| {
        let r = mock_rate(&mock, workers, Duration::from_secs(3));
        println!(
            "{:<28} {r:>9.0} msg/s  ({workers} direct keep-alive clients, legacy requests, no relay)",
            "mock's own rate"
        );
        r
    });
    mock.reset_counts();
    let w = workers.to_string();
    let dir = TempDir::new("delivery");
    let key = dir.0.with_extension("key.json");
    let mut extra = vec![
        "--workers",
        &w,
        "--queue-size",
        "1000000",
        "--max-pending",
        "1000000",
    ];
    let key_arg = key.display().to_string();
    let endpoint = mock.base_url();
    if proto == Proto::V1 {
        std::fs::write(&key, mock_fcm::test_service_account_json(&mock.token_uri())).unwrap();
        extra.extend(["--credentials", &key_arg, "--fcm-endpoint", &endpoint]);
    }
    let relay = start_relay(&mock, &extra, durable.then_some(dir.0.as_path()));
    let addr = relay.addr();
    let cpu_before = CpuParts::now();
    let start = Instant::now();
    let per_client = messages / CLIENTS / per_send;
    let posters: Vec<_> = (0..CLIENTS)
        .map(|c| {
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr);
                for i in 0..per_client {
                    let mut body = String::new();
                    for t in 0..per_send {
                        body.push_str(&format!("tokens=d-{c}-{i}-{t}&"));
                    }
                    body.push_str("payload=%7B%7D");
                    let status = conn.post("/gcm/send", &body);
                    assert_eq!(status, 200);
                }
            })
        })
        .collect();
    for p in posters {
        p.join().unwrap();
    }
    let posted = start.elapsed();
    let total = (per_client * CLIENTS * per_send) as u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while relay.stats().report().delivered < total && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    let elapsed = start.elapsed();
    let cpu = CpuParts::between(&cpu_before, &CpuParts::now());
    let report = relay.stats().report();
    let rate = report.delivered as f64 / elapsed.as_secs_f64();
    let rss_after = rss_mib();
    let _ = std::fs::remove_file(&key);
    let vs_mock = mock_ceiling.map_or(String::new(), |m| {
        format!(", {:.2} of the mock's own rate", rate / m)
    });
    println!(
        "{:<28} {rate:>9.0} msg/s  ratio {:.2} of the ceiling{vs_mock}; posting took {:.2} s; {} delivered, {} failed",
        "gocm delivery",
        rate / ceiling,
        posted.as_secs_f64(),
        report.delivered,
        report.failures
    );
    let per_msg = |d: Duration| d.as_secs_f64() * 1e6 / report.delivered.max(1) as f64;
    println!(
        "{:<28} {:>9.0} us per message: relay {:.0}, mock {:.0}, clients and the rest {:.0} ({:.0}% of {} cores)",
        "CPU time",
        per_msg(cpu.total),
        per_msg(cpu.relay),
        per_msg(cpu.mock),
        per_msg(cpu.rest()),
        100.0 * cpu.total.as_secs_f64() / elapsed.as_secs_f64() / cores() as f64,
        cores()
    );
    println!(
        "{:<28} {:>9.0} msg/s per core of the relay's own CPU ({:.2} cores for 10,000 msg/s)",
        "relay capacity",
        1e6 / per_msg(cpu.relay).max(1e-9),
        per_msg(cpu.relay) * 10_000.0 / 1e6
    );
    println!(
        "{:<28} {:>9} upstream TCP connections opened (workers: {workers}; GoCM opened about one per message)",
        "connections",
        mock.connections()
    );
    println!(
        "{:<28} RSS grew {} MiB during the run (relay, mock and clients together; peak so far {} MiB)",
        "memory",
        rss_after.saturating_sub(rss_before),
        peak_rss_mib()
    );
    if !latency.is_zero() {
        println!(
            "{:<28} {:>9.0} msg/s needed (0.8 x workers / latency); GoCM reference ~3,400 msg/s",
            "target",
            0.8 * ceiling
        );
    }
}

/// The mock's own capacity: `clients` keep-alive clients posting 1-token
/// legacy requests straight to it.
fn mock_rate(mock: &MockFcm, clients: usize, run: Duration) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let addr = mock.addr();
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let body = format!(r#"{{"registration_ids":["m-{c}-{n}"],"data":{{}}}}"#);
                    conn.post_json("/fcm/send", &body);
                    n += 1;
                }
                n
            })
        })
        .collect();
    std::thread::sleep(run);
    stop.store(true, Ordering::Relaxed);
    let n: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    n as f64 / start.elapsed().as_secs_f64()
}

impl Conn {
    fn post_json(&mut self, path: &str, body: &str) -> u16 {
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.writer.write_all(req.as_bytes()).unwrap();
        self.read_response()
    }
}

/// A relay in front of `mock`: legacy unless `extra` names `--credentials`.
fn start_relay(mock: &MockFcm, extra: &[&str], data_dir: Option<&std::path::Path>) -> Relay {
    let url = mock.legacy_url();
    let dir = data_dir.map_or("none".to_string(), |d| d.display().to_string());
    let mut args = vec![];
    if !extra.contains(&"--credentials") {
        args.extend(["--apikey", "bench", "--gcm-endpoint", &url]);
    }
    args.extend(["--port", "0", "--log-level", "error", "--data-dir", &dir]);
    args.extend_from_slice(extra);
    Relay::start(Config::from_args(&args, |_| None).unwrap()).unwrap()
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// CPU time this process has used (user + system), from /proc/self/stat:
/// less sensitive than a rate to what else the machine is doing.
fn cpu_time() -> Duration {
    stat_cpu("/proc/self/stat")
}

/// This process's CPU time, and how much of it each part's threads used,
/// told apart by thread name: gocm names its threads `gocm-...` (tiny_http's
/// too, see `api::server`), the mock `mock-fcm-...`, the bare responder
/// `bare-...`. The rest is the clients, this bench, and threads that ended
/// between two snapshots (their time stays in the process total only).
struct CpuSnapshot {
    total: Duration,
    /// Thread id → (name, CPU time so far).
    threads: std::collections::HashMap<String, (String, Duration)>,
}

/// CPU used between two snapshots, by part.
#[derive(Default)]
struct CpuParts {
    total: Duration,
    relay: Duration,
    mock: Duration,
    bare: Duration,
}

impl CpuParts {
    fn now() -> CpuSnapshot {
        let total = cpu_time();
        let mut threads = std::collections::HashMap::new();
        for task in std::fs::read_dir("/proc/self/task")
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = task.path();
            let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            threads.insert(
                task.file_name().to_string_lossy().into_owned(),
                (comm, run_time(&path)),
            );
        }
        CpuSnapshot { total, threads }
    }

    /// Per thread alive at `after`: its time since `before` (all of it
    /// for a thread started in between), summed by part.
    fn between(before: &CpuSnapshot, after: &CpuSnapshot) -> CpuParts {
        let mut parts = CpuParts {
            total: after.total.saturating_sub(before.total),
            ..CpuParts::default()
        };
        for (tid, (comm, cpu)) in &after.threads {
            let earlier = before
                .threads
                .get(tid)
                .filter(|(c, _)| c == comm)
                .map_or(Duration::ZERO, |(_, d)| *d);
            let used = cpu.saturating_sub(earlier);
            if comm.starts_with("gocm-") {
                parts.relay += used;
            } else if comm.starts_with("mock-fcm") {
                parts.mock += used;
            } else if comm.starts_with("bare-") {
                parts.bare += used;
            }
        }
        parts
    }

    fn rest(&self) -> Duration {
        self.total
            .saturating_sub(self.relay + self.mock + self.bare)
    }
}

/// A thread's time on a CPU so far, in nanoseconds from its `schedstat`:
/// its `stat` counts whole clock ticks (10 ms), and a worker that used 8 ms
/// of a run would count 0 there.
fn run_time(task: &std::path::Path) -> Duration {
    std::fs::read_to_string(task.join("schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// utime + stime from a /proc `stat` file (a process's or a thread's).
fn stat_cpu(path: impl AsRef<std::path::Path>) -> Duration {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the line, in clock ticks
    // (100 a second on Linux).
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn peak_rss_mib() -> u64 {
    status_mib("VmHWM:")
}

fn rss_mib() -> u64 {
    status_mib("VmRSS:")
}

/// A memory figure of this process from /proc/self/status, in MiB.
fn status_mib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(key)).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .map_or(0, |kb| kb / 1024)
}
