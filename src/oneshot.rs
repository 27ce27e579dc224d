//! `gocm send`: one message, now, through the same provider code the relay
//! uses ([`upstream::build`] and the [`Upstream`] trait), with no HTTP
//! server, no queue and no store: for checking credentials and endpoints
//! before (or without) starting the server.
//!
//! Prints one line per token and exits 0 only when every token was
//! delivered. A transient failure is printed as a failure, not retried: the
//! point is to see what the upstream says right now.

use std::io::Write;
use std::path::PathBuf;

use argh::FromArgs;

use crate::api::send;
use crate::config::{Cli, Config, Secret};
use crate::error::Error;
use crate::upstream::{self, Message, Outcome, Reason};

/// send one message now and print each token's outcome, without starting
/// the server (exit 0 when every token was delivered, 1 otherwise, 2 on a
/// usage or credentials error)
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "send")]
pub struct SendArgs {
    /// device token; repeat for several (required)
    #[argh(option)]
    pub token: Vec<String>,

    /// data payload, a JSON object, checked as /gcm/send checks it
    /// (default: {})
    #[argh(option, default = "String::from(\"{}\")")]
    pub payload: String,

    /// ask the upstream to validate without delivering (legacy dry_run,
    /// v1 validate_only) (default: off)
    #[argh(switch)]
    pub dry_run: bool,

    /// legacy FCM server key (default: the GOCM_APIKEY environment variable,
    /// or --apikey-file)
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
    #[argh(option)]
    pub fcm_endpoint: Option<String>,

    /// legacy endpoint (default: https://fcm.googleapis.com/fcm/send)
    #[argh(option)]
    pub gcm_endpoint: Option<String>,

    /// upstream connect timeout in ms, TLS handshake included (default: 5000)
    #[argh(option)]
    pub connect_timeout_ms: Option<u64>,

    /// upstream whole-call timeout in ms (default: 15000)
    #[argh(option)]
    pub upstream_timeout_ms: Option<u64>,
}

/// A validated `gocm send`.
#[derive(Debug)]
pub struct SendPlan {
    /// The provider settings; only what [`upstream::build`] reads matters.
    pub config: Config,
    /// Unique, in the order given.
    pub tokens: Vec<String>,
    pub message: Message,
}

impl SendPlan {
    /// Builds the plan from the subcommand's flags laid over `top` (the
    /// flags given before `send`, if any, else their defaults), so the
    /// credentials are checked exactly as the server checks them.
    pub fn new(
        args: SendArgs,
        mut top: Cli,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<SendPlan, Error> {
        if args.token.is_empty() {
            return Err(Error::Config("gocm send needs at least one --token".into()));
        }
        let payload: serde_json::Value = serde_json::from_str(&args.payload).map_err(|e| {
            Error::Config(format!("--payload is not JSON ({e}); give a JSON object"))
        })?;
        let body = serde_json::json!({
            "tokens": args.token,
            "payload": payload,
            "dry_run": args.dry_run,
        });
        let request = send::parse(
            Some("application/json"),
            body.to_string().as_bytes(),
            usize::MAX,
        )
        .map_err(|e| Error::Config(e.message))?;

        // A flag given after `send` wins over the same flag given before it.
        top.apikey = args.apikey.or(top.apikey);
        top.apikey_file = args.apikey_file.or(top.apikey_file);
        top.credentials = args.credentials.or(top.credentials);
        top.project_id = args.project_id.or(top.project_id);
        top.fcm_endpoint = args.fcm_endpoint.unwrap_or(top.fcm_endpoint);
        top.gcm_endpoint = args.gcm_endpoint.unwrap_or(top.gcm_endpoint);
        top.connect_timeout_ms = args.connect_timeout_ms.unwrap_or(top.connect_timeout_ms);
        top.upstream_timeout_ms = args.upstream_timeout_ms.unwrap_or(top.upstream_timeout_ms);
        // Nothing but the provider runs: no store, one idle connection.
        top.data_dir = "none".into();
        top.workers = 1;
        Ok(SendPlan {
            config: Config::from_cli(top, env)?,
            tokens: request.tokens,
            message: request.message,
        })
    }
}

/// Sends, prints one line per token to `out` (`TOKEN: delivered`,
/// `TOKEN: canonical NEW`, `TOKEN: not registered` or
/// `TOKEN: failed (REASON: DETAIL)`), and returns whether every token was
/// delivered. Fails only when the provider cannot be built (unusable
/// credentials).
pub fn run(plan: &SendPlan, out: &mut impl Write) -> Result<bool, Error> {
    let upstream = upstream::build(&plan.config)?;
    let mut all_delivered = true;
    for chunk in plan.tokens.chunks(upstream.max_tokens_per_call()) {
        let outcomes = upstream.send(&plan.message, chunk);
        for (i, token) in chunk.iter().enumerate() {
            let line = match outcomes.get(i) {
                Some(Outcome::Delivered) if plan.message.dry_run => {
                    "valid (dry run: validated by FCM, not delivered)".to_string()
                }
                Some(Outcome::Delivered) => "delivered".to_string(),
                Some(Outcome::Canonical(new)) => format!("canonical {new}"),
                Some(Outcome::NotRegistered) => "not registered".to_string(),
                Some(Outcome::Failed { reason, detail }) => {
                    format!("failed ({}: {detail})", reason.as_str())
                }
                // Refused credentials are not transient: the relay would
                // not get further by retrying (it fails the message too).
                Some(Outcome::Retry { reason, detail, .. }) if *reason == Reason::Auth => {
                    format!("failed ({}: {detail})", reason.as_str())
                }
                Some(Outcome::Retry { reason, detail, .. }) => {
                    format!(
                        "failed ({}: {detail}; transient, the relay would retry)",
                        reason.as_str()
                    )
                }
                None => format!(
                    "failed (upstream: {} answered {} outcomes for {} tokens)",
                    upstream.name(),
                    outcomes.len(),
                    chunk.len()
                ),
            };
            all_delivered &= matches!(
                outcomes.get(i),
                Some(Outcome::Delivered | Outcome::Canonical(_))
            );
            let _ = writeln!(out, "{token}: {line}");
        }
    }
    Ok(all_delivered)
}
