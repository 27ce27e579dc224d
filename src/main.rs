//! The `gocm` binary: flags → config → [`gocm::Relay`], until SIGTERM/SIGINT.

use std::process::ExitCode;

use gocm::config::{ArgsError, Config};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match Config::from_args(&args, |k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(ArgsError::Exit { output, ok: true }) => {
            println!("{output}");
            return ExitCode::SUCCESS;
        }
        Err(ArgsError::Exit { output, ok: false }) => {
            eprintln!("{output}\nRun gocm --help for usage.");
            return ExitCode::from(2);
        }
        Err(ArgsError::Invalid(e)) => {
            eprintln!("gocm: {e}");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::new()
        .parse_filters(&config.log_level)
        .parse_env("RUST_LOG")
        // ureq-proto dumps raw request bytes, Authorization header included,
        // at trace level: never let a secret reach the log that way.
        .filter_module("ureq_proto", log::LevelFilter::Info)
        .format_timestamp_millis()
        .init();

    let mut signals = match Signals::new([SIGTERM, SIGINT]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gocm: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let relay = match gocm::Relay::start(config) {
        Ok(r) => r,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(sig) = signals.forever().next() else {
        return ExitCode::SUCCESS;
    };
    log::info!(
        "signal {sig}: draining (new sends get 503; in-flight calls may finish); \
         signal again to exit at once"
    );
    // A second signal ends the process at once; the store still holds
    // every unfinished request.
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            log::warn!("signal {sig} again: exiting now");
            std::process::exit(1);
        }
    });
    relay.shutdown();
    log::info!("stopped");
    ExitCode::SUCCESS
}
