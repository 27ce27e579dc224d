//! Command-line flags → a validated [`Config`].
//!
//! Every default is written next to its flag, and `gocm --help` prints them.
//! GoCM's Go-style spellings (`-apikey KEY`, `-port=5601`, `-host`) are
//! rewritten to argh's `--flag value` form before parsing, see [`rewrite_go_flags`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use argh::FromArgs;

use crate::error::Error;

/// gocm: a push-notification relay. POST device tokens and a JSON payload to
/// /gcm/send, get `ok` at once; gocm delivers to FCM in the background,
/// retries what is transient, and reports tokens to replace or purge.
#[derive(FromArgs, Debug)]
pub struct Cli {
    /// legacy FCM server key (or set GOCM_APIKEY, which keeps it out of `ps`)
    #[argh(option)]
    pub apikey: Option<String>,

    /// service-account JSON key for FCM HTTP v1 (default: the
    /// GOOGLE_APPLICATION_CREDENTIALS environment variable)
    #[argh(option)]
    pub credentials: Option<PathBuf>,

    /// FCM project id for HTTP v1 (default: project_id from the credentials)
    #[argh(option)]
    pub project_id: Option<String>,

    /// FCM HTTP v1 base URL (default: https://fcm.googleapis.com)
    #[argh(option, default = "String::from(DEFAULT_FCM_ENDPOINT)")]
    pub fcm_endpoint: String,

    /// legacy endpoint (default: https://fcm.googleapis.com/fcm/send)
    #[argh(option, default = "String::from(DEFAULT_GCM_ENDPOINT)")]
    pub gcm_endpoint: String,

    /// address to listen on (default: 127.0.0.1; the API has no
    /// authentication, so listen beyond loopback only behind a firewall)
    #[argh(option, default = "IpAddr::from([127, 0, 0, 1])")]
    pub ipaddress: IpAddr,

    /// port to listen on (default: 5601; 0 picks a free port)
    #[argh(option, default = "5601")]
    pub port: u16,

    /// upstream worker threads, i.e. concurrent upstream calls (default:
    /// 512, enough for ~5,000 calls/s at 100 ms upstream latency)
    #[argh(option, default = "512")]
    pub workers: usize,

    /// HTTP handler threads that parse, validate and store requests; with
    /// the durable queue each waits for its group commit, so more threads
    /// make bigger groups (default: 32)
    #[argh(option, default = "32")]
    pub http_threads: usize,

    /// send requests that may wait for a worker before /gcm/send answers
    /// 503 (default: 10000)
    #[argh(option, default = "10000")]
    pub queue_size: usize,

    /// accepted send requests not yet finished (queued, in flight or
    /// waiting for a retry) before /gcm/send answers 503 (default: 100000)
    #[argh(option, default = "100_000")]
    pub max_pending: u64,

    /// where the durable queue lives, created on first start; `none` keeps
    /// the queue in memory only, lost on exit (default: gocm-data)
    #[argh(option, default = "String::from(\"gocm-data\")")]
    pub data_dir: String,

    /// on SIGTERM/SIGINT, how long in-flight upstream calls may finish, in
    /// ms; the rest stays in the store (default: 10000)
    #[argh(option, default = "10_000")]
    pub shutdown_timeout_ms: u64,

    /// retries of a transient failure per token (default: 2, as GoCM)
    #[argh(option, default = "2")]
    pub retries: u32,

    /// largest request body in bytes; larger gets 413 (default: 1048576)
    #[argh(option, default = "1024 * 1024")]
    pub max_body: usize,

    /// most tokens in one send; more gets 413 (default: 10000)
    #[argh(option, default = "10000")]
    pub max_tokens: usize,

    /// upstream connect timeout in ms, TLS handshake included (default: 5000)
    #[argh(option, default = "5000")]
    pub connect_timeout_ms: u64,

    /// upstream whole-call timeout in ms (default: 15000)
    #[argh(option, default = "15000")]
    pub upstream_timeout_ms: u64,

    /// first retry back-off in ms, doubled per retry, with jitter (default: 1000)
    #[argh(option, default = "1000")]
    pub backoff_ms: u64,

    /// longest retry back-off in ms (default: 60000)
    #[argh(option, default = "60000")]
    pub backoff_max_ms: u64,

    /// idle or silent client connection timeout in ms (default: 30000)
    #[argh(option, default = "30000")]
    pub client_timeout_ms: u64,

    /// log level: error, warn, info, debug or trace (default: info;
    /// RUST_LOG, when set, wins)
    #[argh(option, default = "String::from(\"info\")")]
    pub log_level: String,
}

pub const DEFAULT_GCM_ENDPOINT: &str = "https://fcm.googleapis.com/fcm/send";
pub const DEFAULT_FCM_ENDPOINT: &str = "https://fcm.googleapis.com";

/// Flags that take a value, for [`rewrite_go_flags`].
const OPTIONS: &[&str] = &[
    "apikey",
    "credentials",
    "project-id",
    "fcm-endpoint",
    "gcm-endpoint",
    "ipaddress",
    "port",
    "workers",
    "http-threads",
    "queue-size",
    "max-pending",
    "data-dir",
    "shutdown-timeout-ms",
    "retries",
    "max-body",
    "max-tokens",
    "connect-timeout-ms",
    "upstream-timeout-ms",
    "backoff-ms",
    "backoff-max-ms",
    "client-timeout-ms",
    "log-level",
];

/// GoCM's names for flags that gocm spells differently.
const GO_ALIASES: &[(&str, &str)] = &[("host", "ipaddress")];

/// Rewrites Go-style flags to argh's form: `-apikey K` → `--apikey K`,
/// `--port=5601` / `-port=5601` → `--port 5601`, `-host H` → `--ipaddress H`.
/// Only known flag names in flag position are touched, so a value that
/// starts with `-` (an API key, say) passes through unchanged.
pub fn rewrite_go_flags<S: AsRef<str>>(args: &[S]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut expect_value = false;
    for arg in args {
        let arg = arg.as_ref();
        if expect_value {
            out.push(arg.to_string());
            expect_value = false;
            continue;
        }
        let Some(bare) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            out.push(arg.to_string());
            continue;
        };
        let (name, value) = match bare.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (bare, None),
        };
        let name = GO_ALIASES
            .iter()
            .find(|(go, _)| *go == name)
            .map_or(name, |(_, ours)| *ours);
        if OPTIONS.contains(&name) {
            out.push(format!("--{name}"));
            match value {
                Some(v) => out.push(v.to_string()),
                None => expect_value = true,
            }
        } else if name.len() > 1 && value.is_none() && !arg.starts_with("--") {
            // `-help` and friends.
            out.push(format!("--{name}"));
        } else {
            out.push(arg.to_string());
        }
    }
    out
}

/// A secret string: printed as `<redacted>` by `Debug`, so a config dump or a
/// panic message cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Which upstream protocol delivers the messages.
#[derive(Clone, Debug)]
pub enum Provider {
    /// The legacy GCM/FCM protocol (shut down by Google; kept for mocks and
    /// compatible services).
    Legacy { api_key: Secret, endpoint: String },
    /// FCM HTTP v1 with a service-account key.
    V1 {
        credentials: PathBuf,
        project_id: Option<String>,
        endpoint: String,
    },
}

/// Timeouts and pool size of the upstream HTTP client.
#[derive(Clone, Debug)]
pub struct HttpClientConfig {
    pub connect_timeout: Duration,
    pub call_timeout: Duration,
    /// Idle connections kept open to the upstream; sized to the workers so
    /// that every worker reuses its connection.
    pub max_idle: usize,
}

/// Exponential back-off with jitter: the n-th retry waits about
/// `initial * 2^n`, capped at `max`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The wait before retry number `tries` (0 = the first retry):
    /// `b/2 + rand(0..b)` with `b = min(initial * 2^tries, max)`, as Google's
    /// own GCM sender, so that a burst of retries spreads out.
    pub fn delay(&self, tries: u32) -> Duration {
        let base = self
            .initial
            .saturating_mul(1u32 << tries.min(20))
            .min(self.max);
        let ms = base.as_millis() as u64;
        Duration::from_millis(ms / 2 + fastrand::u64(0..=ms))
    }
}

/// Everything gocm needs to run, validated.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub provider: Provider,
    pub workers: usize,
    pub http_threads: usize,
    pub queue_size: usize,
    pub max_pending: u64,
    /// The durable queue's folder; `None` keeps everything in memory.
    pub data_dir: Option<PathBuf>,
    pub shutdown_timeout: Duration,
    pub retries: u32,
    pub max_body: usize,
    pub max_tokens: usize,
    pub http_client: HttpClientConfig,
    pub backoff: Backoff,
    pub client_timeout: Duration,
    pub log_level: String,
}

impl Config {
    /// Parses argv (without the program name) and the environment, through
    /// `env`, so tests need not touch the process environment.
    pub fn from_args<S: AsRef<str>>(
        args: &[S],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ArgsError> {
        let args = rewrite_go_flags(args);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let cli = Cli::from_args(&["gocm"], &refs).map_err(|e| ArgsError::Exit {
            output: e.output,
            ok: e.status.is_ok(),
        })?;
        Config::from_cli(cli, env).map_err(ArgsError::Invalid)
    }

    pub fn from_cli(cli: Cli, env: impl Fn(&str) -> Option<String>) -> Result<Config, Error> {
        let nonempty = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
        let api_key = nonempty(cli.apikey).or_else(|| nonempty(env("GOCM_APIKEY")));
        let credentials = cli
            .credentials
            .or_else(|| nonempty(env("GOOGLE_APPLICATION_CREDENTIALS")).map(PathBuf::from));
        let provider = match (api_key, credentials) {
            (Some(_), Some(_)) => {
                return Err(Error::Config(
                    "both an API key (legacy) and a service-account key (HTTP v1) are set; \
                     pass only one of --apikey/GOCM_APIKEY and \
                     --credentials/GOOGLE_APPLICATION_CREDENTIALS"
                        .into(),
                ))
            }
            (Some(key), None) => Provider::Legacy {
                api_key: Secret::new(key.trim()),
                endpoint: check_url("--gcm-endpoint", cli.gcm_endpoint)?,
            },
            (None, Some(path)) => Provider::V1 {
                credentials: path,
                project_id: nonempty(cli.project_id),
                endpoint: check_url("--fcm-endpoint", cli.fcm_endpoint)?
                    .trim_end_matches('/')
                    .to_string(),
            },
            (None, None) => {
                return Err(Error::Config(
                    "no upstream credentials: pass --credentials service-account.json \
                     (FCM HTTP v1), or --apikey KEY / GOCM_APIKEY (legacy protocol)"
                        .into(),
                ))
            }
        };
        let positive = |name: &str, v: usize| {
            if v == 0 {
                Err(Error::Config(format!("{name} must be at least 1")))
            } else {
                Ok(v)
            }
        };
        let ms = |name: &str, v: u64| {
            if v == 0 {
                Err(Error::Config(format!("{name} must be at least 1 ms")))
            } else {
                Ok(Duration::from_millis(v))
            }
        };
        let workers = positive("--workers", cli.workers)?;
        let backoff = Backoff {
            initial: ms("--backoff-ms", cli.backoff_ms)?,
            max: ms("--backoff-max-ms", cli.backoff_max_ms)?,
        };
        if backoff.max < backoff.initial {
            return Err(Error::Config(
                "--backoff-max-ms must not be below --backoff-ms".into(),
            ));
        }
        if cli.log_level.parse::<log::LevelFilter>().is_err() {
            return Err(Error::Config(format!(
                "--log-level {:?}: use error, warn, info, debug or trace",
                cli.log_level
            )));
        }
        Ok(Config {
            listen: SocketAddr::new(cli.ipaddress, cli.port),
            provider,
            workers,
            http_threads: positive("--http-threads", cli.http_threads)?,
            queue_size: positive("--queue-size", cli.queue_size)?,
            max_pending: positive("--max-pending", cli.max_pending as usize)? as u64,
            data_dir: match cli.data_dir.trim() {
                "" => {
                    return Err(Error::Config(
                        "--data-dir is empty: give a folder, or `none` for memory only".into(),
                    ))
                }
                "none" => None,
                dir => Some(PathBuf::from(dir)),
            },
            shutdown_timeout: Duration::from_millis(cli.shutdown_timeout_ms),
            retries: cli.retries,
            max_body: positive("--max-body", cli.max_body)?,
            max_tokens: positive("--max-tokens", cli.max_tokens)?,
            http_client: HttpClientConfig {
                connect_timeout: ms("--connect-timeout-ms", cli.connect_timeout_ms)?,
                call_timeout: ms("--upstream-timeout-ms", cli.upstream_timeout_ms)?,
                max_idle: workers,
            },
            backoff,
            client_timeout: ms("--client-timeout-ms", cli.client_timeout_ms)?,
            log_level: cli.log_level,
        })
    }
}

fn check_url(flag: &str, url: String) -> Result<String, Error> {
    let url = url.trim().to_string();
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url)
    } else {
        Err(Error::Config(format!(
            "{flag} {url:?} is not an http:// or https:// URL"
        )))
    }
}

/// Why [`Config::from_args`] did not produce a config.
#[derive(Debug)]
pub enum ArgsError {
    /// argh's own output: `--help` (ok = true) or a usage error.
    Exit { output: String, ok: bool },
    /// The flags parsed but do not make a valid config.
    Invalid(Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn go_spellings_are_rewritten() {
        let got = rewrite_go_flags(&["-apikey", "-k-", "-port=5602", "-host", "0.0.0.0", "-help"]);
        assert_eq!(
            got,
            [
                "--apikey",
                "-k-",
                "--port",
                "5602",
                "--ipaddress",
                "0.0.0.0",
                "--help"
            ]
        );
    }

    #[test]
    fn go_style_command_line_parses() {
        let c = Config::from_args(&["-apikey", "K", "-port", "5700"], no_env).unwrap();
        assert_eq!(c.listen.port(), 5700);
        assert!(c.listen.ip().is_loopback());
        match c.provider {
            Provider::Legacy { api_key, .. } => assert_eq!(api_key.expose(), "K"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn api_key_from_environment_and_never_in_debug() {
        let env = |k: &str| (k == "GOCM_APIKEY").then(|| "s3cret".to_string());
        let c = Config::from_args::<&str>(&[], env).unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn no_credentials_is_a_clear_error() {
        match Config::from_args::<&str>(&[], no_env) {
            Err(ArgsError::Invalid(e)) => assert!(e.to_string().contains("--apikey")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let b = Backoff {
            initial: Duration::from_millis(1000),
            max: Duration::from_millis(4000),
        };
        for _ in 0..100 {
            let d0 = b.delay(0).as_millis();
            assert!((500..=1500).contains(&d0), "{d0}");
            let d5 = b.delay(5).as_millis();
            assert!((2000..=6000).contains(&d5), "{d5}");
        }
    }
}
