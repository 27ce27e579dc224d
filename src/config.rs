//! Command-line flags → a validated [`Config`] (or, for `gocm send`, a
//! [`SendPlan`]).
//!
//! Every default is written next to its flag, and `gocm --help` prints them.
//! GoCM's Go-style spellings (`-apikey KEY`, `-port=5601`, `-host`) are
//! rewritten to argh's `--flag value` form before parsing, see [`rewrite_go_flags`].
//! Secrets (API key, auth token) may come from a file or the environment
//! instead of argv, where `ps` would show them; see [`read_secret_file`].

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use argh::FromArgs;

use crate::error::Error;
use crate::oneshot::{SendArgs, SendPlan};

/// gocm: a push-notification relay. POST device tokens and a JSON payload to
/// /gcm/send, get `ok` at once; gocm delivers to FCM in the background,
/// retries what is transient, and reports tokens to replace or purge.
#[derive(FromArgs, Debug)]
pub struct Cli {
    /// print gocm's version and exit
    #[argh(switch)]
    pub version: bool,

    /// legacy FCM server key (default: the GOCM_APIKEY environment variable,
    /// or --apikey-file; both keep it out of `ps`)
    #[argh(option)]
    pub apikey: Option<Secret>,

    /// file holding the legacy FCM server key; a trailing newline is
    /// ignored (default: none)
    #[argh(option)]
    pub apikey_file: Option<PathBuf>,

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

    /// address to listen on (default: 127.0.0.1; beyond loopback, set an
    /// --auth-token and put TLS in front, see deploy/nginx.conf)
    #[argh(option)]
    pub ipaddress: Option<IpAddr>,

    /// port to listen on (default: 5601; 0 picks a free port)
    #[argh(option)]
    pub port: Option<u16>,

    /// listen on this UNIX socket instead of TCP (default: none, TCP). The
    /// socket is created with mode 0660 whatever the umask (owner and group,
    /// e.g. nginx's user in gocm's group, may connect); a stale socket left
    /// by a crash is replaced, any other file there is refused; it is
    /// removed on exit
    #[argh(option)]
    pub unix_socket: Option<PathBuf>,

    /// require `Authorization: Bearer TOKEN` on every route but /healthz
    /// (default: the GOCM_AUTH_TOKEN environment variable, or
    /// --auth-token-file; none: the API is open)
    #[argh(option)]
    pub auth_token: Option<Secret>,

    /// file holding the API bearer token; a trailing newline is ignored
    /// (default: none)
    #[argh(option)]
    pub auth_token_file: Option<PathBuf>,

    /// upstream worker threads, i.e. concurrent upstream calls (default:
    /// 512: at most ~5,000 calls/s at 100 ms upstream latency)
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

    /// append the log to this file instead of writing it to stderr
    /// (default: stderr)
    #[argh(option)]
    pub logto: Option<PathBuf>,

    #[argh(subcommand)]
    pub command: Option<Command>,
}

/// What gocm does instead of serving.
#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum Command {
    Send(SendArgs),
}

pub const DEFAULT_GCM_ENDPOINT: &str = "https://fcm.googleapis.com/fcm/send";
pub const DEFAULT_FCM_ENDPOINT: &str = "https://fcm.googleapis.com";

/// Flags that take a value, for [`rewrite_go_flags`].
const OPTIONS: &[&str] = &[
    "apikey",
    "apikey-file",
    "credentials",
    "project-id",
    "fcm-endpoint",
    "gcm-endpoint",
    "ipaddress",
    "port",
    "unix-socket",
    "auth-token",
    "auth-token-file",
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
    "logto",
    // `gocm send`
    "token",
    "payload",
];

/// GoCM's names for flags that gocm spells differently.
const GO_ALIASES: &[(&str, &str)] = &[("host", "ipaddress"), ("h", "help")];

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

/// Reads a secret from `path` (named by `flag` in errors): UTF-8 text, one
/// trailing newline (or several, `\r\n` too) removed, as written by `echo`
/// or an editor. Errors name the file, never its content.
pub fn read_secret_file(flag: &str, path: &Path) -> Result<Secret, Error> {
    let problem = |what: String| Error::Config(format!("{flag} {}: {what}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| problem(format!("cannot read it ({e})")))?;
    let text = String::from_utf8(bytes).map_err(|_| problem("is not UTF-8 text".into()))?;
    let secret = text.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        return Err(problem("is empty".into()));
    }
    Ok(Secret::new(secret))
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

/// So that argh parses a secret flag straight into a `Secret`, and the raw
/// flag structs' `Debug` redacts it too.
impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Secret, Self::Err> {
        Ok(Secret::new(s))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where the API listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for Listen {
    /// `http://127.0.0.1:5601` or `unix:/run/gocm/gocm.sock`, as logged at
    /// startup.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Tcp(addr) => write!(f, "http://{addr}"),
            Listen::Unix(path) => write!(f, "unix:{}", path.display()),
        }
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
    pub listen: Listen,
    /// When set, every route but `/healthz` requires this bearer token.
    pub auth_token: Option<Secret>,
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
    /// Append the log here instead of stderr.
    pub log_to: Option<PathBuf>,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Invocation {
    /// Run the relay.
    Serve(Config),
    /// `gocm send`: one message, now, without the server.
    Send(SendPlan),
}

/// Parses argv (without the program name) and the environment, through
/// `env`, so tests need not touch the process environment.
pub fn parse_args<S: AsRef<str>>(
    args: &[S],
    env: impl Fn(&str) -> Option<String>,
) -> Result<Invocation, ArgsError> {
    let args = rewrite_go_flags(args);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cli = Cli::from_args(&["gocm"], &refs).map_err(|e| ArgsError::Exit {
        output: e.output,
        ok: e.status.is_ok(),
    })?;
    if cli.version {
        return Err(ArgsError::Exit {
            output: format!("gocm {}", env!("CARGO_PKG_VERSION")),
            ok: true,
        });
    }
    match cli.command.take() {
        None => Config::from_cli(cli, env).map(Invocation::Serve),
        Some(Command::Send(send)) => {
            SendPlan::new(send, cli, env)
                .map(Invocation::Send)
                .map_err(|e| match e {
                    Error::Config(msg) => Error::SendUsage(msg),
                    other => other,
                })
        }
    }
    .map_err(ArgsError::Invalid)
}

impl Config {
    /// [`parse_args`] for the server: `gocm send` is refused.
    pub fn from_args<S: AsRef<str>>(
        args: &[S],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ArgsError> {
        match parse_args(args, env)? {
            Invocation::Serve(config) => Ok(config),
            Invocation::Send(_) => Err(ArgsError::Invalid(Error::Config(
                "`send` is a one-shot command, not a server flag".into(),
            ))),
        }
    }

    pub fn from_cli(cli: Cli, env: impl Fn(&str) -> Option<String>) -> Result<Config, Error> {
        let nonempty = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
        // An empty --apikey is a mistake (an unset shell variable), not a
        // request to look elsewhere: say so rather than "no credentials".
        if cli
            .apikey
            .as_ref()
            .is_some_and(|k| k.expose().trim().is_empty())
        {
            return Err(Error::Config(
                "--apikey is empty: give the legacy server key, or drop the flag".into(),
            ));
        }
        let flag_key = cli.apikey;
        let api_key = match (flag_key, cli.apikey_file) {
            (Some(_), Some(_)) => {
                return Err(Error::Config(
                    "both --apikey and --apikey-file are set; pass only one".into(),
                ))
            }
            (Some(key), None) => Some(key),
            (None, Some(path)) => Some(read_secret_file("--apikey-file", &path)?),
            (None, None) => nonempty(env("GOCM_APIKEY")).map(Secret::new),
        };
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
                api_key: Secret::new(key.expose().trim()),
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
        let listen = match cli.unix_socket {
            Some(_) if cli.ipaddress.is_some() || cli.port.is_some() => {
                return Err(Error::Config(
                    "--unix-socket replaces --ipaddress and --port; pass one or the other".into(),
                ))
            }
            Some(path) if path.as_os_str().is_empty() => {
                return Err(Error::Config("--unix-socket is empty: give a path".into()))
            }
            Some(path) => Listen::Unix(path),
            None => Listen::Tcp(SocketAddr::new(
                cli.ipaddress.unwrap_or(IpAddr::from([127, 0, 0, 1])),
                cli.port.unwrap_or(5601),
            )),
        };
        let auth_token = match (cli.auth_token, cli.auth_token_file) {
            (Some(_), Some(_)) => {
                return Err(Error::Config(
                    "both --auth-token and --auth-token-file are set; pass only one".into(),
                ))
            }
            (Some(token), None) => Some(check_auth_token("--auth-token", token)?),
            (None, Some(path)) => Some(check_auth_token(
                &format!("--auth-token-file {}", path.display()),
                read_secret_file("--auth-token-file", &path)?,
            )?),
            (None, None) => match nonempty(env("GOCM_AUTH_TOKEN")) {
                Some(token) => Some(check_auth_token("GOCM_AUTH_TOKEN", Secret::new(token))?),
                None => None,
            },
        };
        if cli.log_level.parse::<log::LevelFilter>().is_err() {
            return Err(Error::Config(format!(
                "--log-level {:?}: use error, warn, info, debug or trace",
                cli.log_level
            )));
        }
        Ok(Config {
            listen,
            auth_token,
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
            log_to: cli.logto,
        })
    }
}

/// A bearer token must survive an HTTP header: visible ASCII, no spaces.
/// The error names where the token came from, not the token.
fn check_auth_token(source: &str, token: Secret) -> Result<Secret, Error> {
    if token.expose().is_empty() {
        return Err(Error::Config(format!("{source}: the token is empty")));
    }
    if !token.expose().bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::Config(format!(
            "{source}: the token has a space, a control or a non-ASCII character; \
             use visible ASCII only (e.g. the output of `openssl rand -hex 32`)"
        )));
    }
    Ok(token)
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
        match c.listen {
            Listen::Tcp(addr) => assert_eq!(addr, "127.0.0.1:5700".parse().unwrap()),
            other => panic!("{other:?}"),
        }
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
    fn short_help_and_version_exit_successfully() {
        for (args, needle) in [(["-h"], "--apikey"), (["--version"], "gocm 0.")] {
            match parse_args(&args, no_env) {
                Err(ArgsError::Exit { output, ok: true }) => {
                    assert!(output.contains(needle), "{output}")
                }
                other => panic!("{args:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_empty_api_key_says_it_is_empty() {
        let env = |k: &str| (k == "GOCM_APIKEY").then(|| "from-env".to_string());
        match Config::from_args(&["--apikey", " "], env) {
            Err(ArgsError::Invalid(e)) => {
                assert!(e.to_string().contains("--apikey is empty"), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }

    fn temp_file(name: &str, content: &[u8]) -> PathBuf {
        let p = std::env::temp_dir().join(format!("gocm-config-{name}-{}", std::process::id()));
        std::fs::write(&p, content).unwrap();
        p
    }

    fn invalid(args: &[&str], env: impl Fn(&str) -> Option<String>) -> String {
        match Config::from_args(args, env) {
            Err(ArgsError::Invalid(e)) => e.to_string(),
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn secret_files_lose_trailing_newlines_only() {
        let p = temp_file("secret", b" key with inner space\r\n\n");
        let s = read_secret_file("--apikey-file", &p).unwrap();
        assert_eq!(s.expose(), " key with inner space");
        std::fs::write(&p, b"\n").unwrap();
        let e = read_secret_file("--apikey-file", &p)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("is empty") && e.contains(p.to_str().unwrap()),
            "{e}"
        );
        std::fs::write(&p, b"\xff\xfe").unwrap();
        let e = read_secret_file("--apikey-file", &p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not UTF-8"), "{e}");
        std::fs::remove_file(&p).unwrap();
        let e = read_secret_file("--apikey-file", &p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read"), "{e}");
    }

    #[test]
    fn raw_flags_redact_secrets_in_debug() {
        let cli = Cli::from_args(&["gocm"], &["--apikey", "k3y", "--auth-token", "t0k"]).unwrap();
        let dump = format!("{cli:?}");
        assert!(!dump.contains("k3y") && !dump.contains("t0k"), "{dump}");
    }

    #[test]
    fn api_key_from_a_file() {
        let p = temp_file("apikey", b"filekey\n");
        let c = Config::from_args(&["--apikey-file", p.to_str().unwrap()], no_env).unwrap();
        match c.provider {
            Provider::Legacy { api_key, .. } => assert_eq!(api_key.expose(), "filekey"),
            other => panic!("{other:?}"),
        }
        let both = invalid(
            &["--apikey", "k", "--apikey-file", p.to_str().unwrap()],
            no_env,
        );
        assert!(both.contains("--apikey-file"), "{both}");
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn auth_token_sources_and_checks() {
        let env = |k: &str| (k == "GOCM_AUTH_TOKEN").then(|| "from-env".to_string());
        let c = Config::from_args(&["--apikey", "k"], env).unwrap();
        assert_eq!(c.auth_token.as_ref().map(Secret::expose), Some("from-env"));
        assert!(!format!("{c:?}").contains("from-env"));
        // A flag wins over the environment.
        let c = Config::from_args(&["--apikey", "k", "--auth-token", "flag"], env).unwrap();
        assert_eq!(c.auth_token.as_ref().map(Secret::expose), Some("flag"));
        let c = Config::from_args(&["--apikey", "k"], no_env).unwrap();
        assert!(c.auth_token.is_none());

        let p = temp_file("token", b"file-token\n");
        let path = p.to_str().unwrap();
        let c = Config::from_args(&["--apikey", "k", "--auth-token-file", path], no_env).unwrap();
        assert_eq!(
            c.auth_token.as_ref().map(Secret::expose),
            Some("file-token")
        );
        let both = invalid(
            &[
                "--apikey",
                "k",
                "--auth-token",
                "x",
                "--auth-token-file",
                path,
            ],
            no_env,
        );
        assert!(both.contains("only one"), "{both}");
        std::fs::write(&p, "two words\n").unwrap();
        let e = invalid(&["--apikey", "k", "--auth-token-file", path], no_env);
        assert!(
            e.contains("visible ASCII") && !e.contains("two words"),
            "{e}"
        );
        std::fs::remove_file(&p).unwrap();
        let e = invalid(&["--apikey", "k", "--auth-token", "s3cr\u{e9}t"], no_env);
        assert!(e.contains("--auth-token") && !e.contains("s3cr"), "{e}");
    }

    #[test]
    fn unix_socket_replaces_tcp() {
        let c = Config::from_args(&["--apikey", "k", "-unix-socket=/run/g.sock"], no_env).unwrap();
        assert_eq!(c.listen, Listen::Unix("/run/g.sock".into()));
        assert_eq!(c.listen.to_string(), "unix:/run/g.sock");
        let e = invalid(
            &["--apikey", "k", "--unix-socket", "/x", "-host", "::1"],
            no_env,
        );
        assert!(e.contains("--unix-socket replaces"), "{e}");
    }

    #[test]
    fn send_is_a_subcommand_not_a_server() {
        let args = [
            "-apikey", "k", "send", "-token", "a", "--token", "a", "--token", "b",
        ];
        match parse_args(&args, no_env) {
            Ok(Invocation::Send(plan)) => {
                assert_eq!(plan.tokens, ["a", "b"]);
                assert!(plan.config.data_dir.is_none());
            }
            other => panic!("{other:?}"),
        }
        let e = invalid(&args, no_env);
        assert!(e.contains("one-shot"), "{e}");
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
