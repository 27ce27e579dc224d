//! The `gocm` binary: flags → config → [`gocm::Relay`], until SIGTERM/SIGINT;
//! or `gocm send`, one message and its outcome ([`gocm::oneshot`]).

use std::process::ExitCode;

use gocm::config::{parse_args, ArgsError, Config, Invocation};
use gocm::oneshot::{self, SendPlan};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse_args(&args, |k| std::env::var(k).ok()) {
        Ok(Invocation::Serve(config)) => serve(config),
        Ok(Invocation::Send(plan)) => send(&plan),
        Err(ArgsError::Exit { output, ok: true }) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(ArgsError::Exit { output, ok: false }) => {
            eprintln!("{output}\nRun gocm --help (or gocm send --help) for usage.");
            ExitCode::from(2)
        }
        Err(ArgsError::Invalid(e)) => {
            eprintln!("gocm: {e}");
            ExitCode::from(2)
        }
    }
}

/// `gocm send`: warnings only on stderr (the outcome lines are on stdout),
/// unless RUST_LOG asks for more.
fn send(plan: &SendPlan) -> ExitCode {
    if let Err(e) = gocm::logging::init("warn", None) {
        eprintln!("gocm: {e}");
        return ExitCode::from(2);
    }
    match oneshot::run(plan, &mut std::io::stdout().lock()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("gocm send: {e}");
            ExitCode::from(2)
        }
    }
}

fn serve(config: Config) -> ExitCode {
    if let Err(e) = gocm::logging::init(&config.log_level, config.log_to.as_deref()) {
        eprintln!("gocm: {e}");
        return ExitCode::from(2);
    }
    let mut signals = match Signals::new([SIGTERM, SIGINT]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gocm: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let durable = config.data_dir.is_some();
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
    if durable {
        log::info!("stopped; what was not delivered stays in the store for the next start");
    } else {
        log::info!("stopped");
    }
    ExitCode::SUCCESS
}
