//! `--unix-socket`: the API over a UNIX socket, its mode, stale sockets,
//! files that must not be replaced, removal on exit, idle timeouts.

mod common;

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{legacy, unix_http, wait_until, API_KEY};
use gocm::config::{ArgsError, Config, Listen};
use gocm::Relay;

/// A socket path under the temp dir, removed (whatever it is) on drop.
struct SocketPath(PathBuf);

impl SocketPath {
    fn new(name: &str) -> SocketPath {
        let p = std::env::temp_dir().join(format!("gocm-{name}-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&p);
        SocketPath(p)
    }
    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for SocketPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn is_socket(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

fn config(socket: &SocketPath, extra: &[&str]) -> Config {
    let mut args = vec![
        "--apikey",
        API_KEY,
        "--gcm-endpoint",
        "http://127.0.0.1:9/fcm/send",
        "--data-dir",
        "none",
        "--workers",
        "2",
        "--unix-socket",
        socket.arg(),
    ];
    args.extend_from_slice(extra);
    Config::from_args(&args, |_| None).expect("valid flags")
}

#[test]
fn send_and_report_over_a_unix_socket() {
    let socket = SocketPath::new("send");
    let h = legacy(&["--unix-socket", socket.arg()]);
    assert_eq!(h.relay.listen_addr(), &Listen::Unix(socket.0.clone()));
    let mode = std::fs::metadata(&socket.0).unwrap().permissions().mode();
    assert!(is_socket(&socket.0));
    assert_eq!(mode & 0o777, 0o660, "mode {mode:o}");

    let a = unix_http(
        &socket.0,
        "POST",
        "/gcm/send",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"tokens=ux-1&tokens=notreg-ux2&payload={\"k\": \"v\"}",
    );
    assert_eq!((a.status, a.body.as_str()), (200, "ok\n"));
    wait_until("delivery", Duration::from_secs(10), || {
        h.mock.delivered("ux-1") == 1
    });
    wait_until("the report", Duration::from_secs(10), || {
        let r = unix_http(&socket.0, "GET", "/gcm/report", &[], b"");
        r.status == 200 && r.json()["pending"] == 0
    });
    let r = unix_http(&socket.0, "GET", "/gcm/report", &[], b"").json();
    assert_eq!(
        (r["attempts"].as_u64(), r["delivered"].as_u64()),
        (Some(2), Some(1))
    );
    let n = unix_http(&socket.0, "GET", "/gcm/report/notregistered", &[], b"").json();
    assert_eq!(n["tokens"], serde_json::json!(["notreg-ux2"]));

    h.relay.shutdown();
    assert!(!socket.0.exists(), "the socket file is removed on exit");
}

#[test]
fn a_stale_socket_is_replaced() {
    let socket = SocketPath::new("stale");
    // A listener that went away without removing its file, as after a crash.
    drop(UnixListener::bind(&socket.0).unwrap());
    assert!(is_socket(&socket.0));
    let relay = Relay::start(config(&socket, &[])).expect("a stale socket is replaced");
    let a = unix_http(&socket.0, "GET", "/healthz", &[], b"");
    assert_eq!((a.status, a.body.as_str()), (200, "ok\n"));
    relay.shutdown();
    assert!(!socket.0.exists());
}

#[test]
fn a_regular_file_is_never_replaced() {
    let socket = SocketPath::new("regular");
    std::fs::write(&socket.0, "precious data\n").unwrap();
    let err = Relay::start(config(&socket, &[]))
        .err()
        .expect("a regular file is refused")
        .to_string();
    assert!(err.contains("not a socket"), "{err}");
    assert!(err.contains(socket.arg()), "{err}");
    assert_eq!(
        std::fs::read_to_string(&socket.0).unwrap(),
        "precious data\n"
    );
}

#[test]
fn a_missing_folder_is_named() {
    let socket = SocketPath(
        std::env::temp_dir()
            .join(format!("gocm-no-such-dir-{}", std::process::id()))
            .join("gocm.sock"),
    );
    let err = Relay::start(config(&socket, &[]))
        .err()
        .expect("a socket in a missing folder is refused")
        .to_string();
    assert!(err.contains("does not exist"), "{err}");
    assert!(!socket.0.parent().unwrap().exists(), "nothing was created");
}

#[test]
fn a_socket_in_use_is_refused() {
    let socket = SocketPath::new("inuse");
    let other = UnixListener::bind(&socket.0).unwrap();
    let err = Relay::start(config(&socket, &[]))
        .err()
        .expect("a live socket is refused")
        .to_string();
    assert!(err.contains("another process is listening"), "{err}");
    // Still the other process's socket.
    assert!(UnixStream::connect(&socket.0).is_ok());
    drop(other);
}

#[test]
fn an_idle_client_is_disconnected() {
    let socket = SocketPath::new("idle");
    let relay = Relay::start(config(&socket, &["--client-timeout-ms", "300"])).unwrap();
    let mut s = UnixStream::connect(&socket.0).unwrap();
    // Longer than the client timeout, so that the test fails rather than
    // hangs if gocm never closes.
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).expect("gocm closes the idle connection");
    assert_eq!(n, 0, "EOF, not data");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    relay.shutdown();
}

#[test]
fn unix_socket_and_port_together_are_refused() {
    let socket = SocketPath::new("both");
    let args = [
        "--apikey",
        "k",
        "--unix-socket",
        socket.arg(),
        "--port",
        "5601",
    ];
    match Config::from_args(&args, |_| None) {
        Err(ArgsError::Invalid(e)) => assert!(e.to_string().contains("--unix-socket"), "{e}"),
        other => panic!("{other:?}"),
    }
}
