//! The `sessiongate` binary as operators meet it: `check` on good and bad files, `gen-secret`,
//! `--version`, and `run` from start to SIGTERM with its log lines.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_sessiongate");

fn sessiongate(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("SESSIONGATE_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs")
}

fn configs(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/configs")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("config dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}

#[test]
fn check_accepts_good_files_and_prints_a_summary() {
    for file in configs("good") {
        let out = sessiongate(&["check", "--config", file.to_str().expect("utf-8 path")]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(": ok"), "{stdout}");
        assert!(
            stdout.contains("upstream      http://127.0.0.1:8080/"),
            "{stdout}"
        );
        assert!(
            !stdout.contains("c2Vzc2lvbmdhdGUt"),
            "the summary must not print secrets: {stdout}"
        );
    }
}

/// Each bad file states the messages it must produce in `# expect:` lines.
#[test]
fn check_rejects_each_bad_file_with_its_message() {
    let files = configs("bad");
    assert!(files.len() >= 12, "only {} bad configs", files.len());
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expected.is_empty(),
            "{} states no expectation",
            file.display()
        );
        let out = sessiongate(&["check", "--config", file.to_str().expect("utf-8 path")]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", file.display());
        for message in expected {
            assert!(
                stderr.contains(message),
                "{}: expected {message:?} in:\n{stderr}",
                file.display()
            );
        }
        assert!(
            !stderr.contains("c2Vzc2lvbmdhdGUt"),
            "{}: a secret was printed:\n{stderr}",
            file.display()
        );
    }
}

#[test]
fn check_reports_a_missing_file() {
    let out = sessiongate(&["check", "--config", "/nonexistent/sessiongate.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/sessiongate.toml")
    );
}

#[test]
fn check_reads_the_path_from_the_environment() {
    let good = configs("good").remove(0);
    let out = Command::new(BIN)
        .arg("check")
        .env("SESSIONGATE_CONFIG", &good)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(BIN)
        .arg("check")
        .env("SESSIONGATE_CONFIG", &good)
        .env("SESSIONGATE_SESSION_IDLE_TIMEOUT", "13h")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("session.idle_timeout (13h) must not exceed session.absolute_timeout (12h)")
    );
}

#[test]
fn gen_secret_prints_a_fresh_valid_key() {
    let first = sessiongate(&["gen-secret"]);
    let second = sessiongate(&["gen-secret"]);
    assert!(first.status.success());
    let first = String::from_utf8_lossy(&first.stdout).trim().to_string();
    let second = String::from_utf8_lossy(&second.stdout).trim().to_string();
    assert_ne!(first, second);
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&first)
        .expect("base64");
    assert_eq!(bytes.len(), 32);
    // And the configuration accepts it.
    let env = sessiongate::Environment::default().with("SESSIONGATE_SESSION_SECRETS", &first);
    let text = std::fs::read_to_string(configs("good").remove(0)).expect("read");
    sessiongate::Config::parse(&text, &env).expect("a generated secret is valid");
}

#[test]
fn version_and_help_read_well() {
    let out = sessiongate(&["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("sessiongate {}", env!("CARGO_PKG_VERSION"))
    );
    let out = sessiongate(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for command in ["run", "check", "gen-secret", "healthcheck"] {
        assert!(
            help.contains(command),
            "{command} missing from --help:\n{help}"
        );
    }
    let out = sessiongate(&["run", "--help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("SESSIONGATE_CONFIG"));
}

#[test]
fn run_refuses_a_bad_config_without_starting() {
    let bad =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/bad/idle-exceeds-absolute.toml");
    let out = sessiongate(&["run", "--config", bad.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must not exceed"));
}

/// The real binary: starts, serves, logs one JSON line per request without secrets, and
/// exits 0 on SIGTERM.
#[tokio::test]
async fn run_serves_logs_and_stops_on_sigterm() {
    let upstream = common::upstream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("sessiongate.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
public_url = "http://127.0.0.1:4180"
[upstream]
url = "http://{}"
[oidc]
issuer = "http://127.0.0.1:1"
client_id = "test"
client_secret = "oidc-client-secret-value"
[session]
secrets = ["c2Vzc2lvbmdhdGUtdGVzdC1zZWNyZXQtMDEyMzQ1Njc4OQ=="]
[access]
public_paths = ["/"]
[log]
format = "json"
"#,
            upstream.addr
        ),
    )
    .expect("write config");
    let running = Running::start(&config).await;
    let started: serde_json::Value = running
        .log
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .find(|l: &serde_json::Value| l["message"] == "sessiongate started")
        .expect("the start line");
    let addr = started["listen"]
        .as_str()
        .expect("listen address")
        .to_string();

    let request = http::Request::get(format!(
        "http://{addr}/echo/logged?token=query-secret-value"
    ))
    .header("cookie", "sessiongate=cookie-secret-value")
    .header("authorization", "Bearer bearer-secret-value")
    .body(common::full(""))
    .expect("request");
    let (status, _, _) = common::send(&common::client(), request).await;
    assert_eq!(status, http::StatusCode::OK);

    let log = running.stop().await;
    for line in &log {
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok(), "every log line is JSON: {line}");
    }

    let request_line = log
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message"] == "request")
        .unwrap_or_else(|| panic!("no request line in {log:#?}"));
    assert_eq!(request_line["method"], "GET");
    assert_eq!(request_line["path"], "/echo/logged");
    assert_eq!(request_line["status"], 200);
    assert_eq!(request_line["route"], "public");
    assert!(request_line["latency_ms"].is_number());
    assert!(request_line["upstream_ms"].is_number());
    let all = log.join("\n");
    for secret in [
        "query-secret-value",
        "cookie-secret-value",
        "bearer-secret-value",
        "oidc-client-secret-value",
        "c2Vzc2lvbmdhdGUt",
    ] {
        assert!(
            !all.contains(secret),
            "{secret} appeared in the log:\n{all}"
        );
    }
    assert!(all.contains("\"message\":\"stopped\""), "{all}");
}

/// The provider recipes in config/providers/ pass `check` once their secrets are given.
#[test]
fn every_provider_recipe_passes_check() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/providers");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("recipes")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    for file in files {
        let out = Command::new(BIN)
            .args(["check", "--config", file.to_str().expect("utf-8")])
            .env(
                "SESSIONGATE_SESSION_SECRETS",
                "c2Vzc2lvbmdhdGUtdGVzdC1zZWNyZXQtMDEyMzQ1Njc4OQ==",
            )
            .env("SESSIONGATE_OIDC_CLIENT_SECRET", "recipe-test")
            .output()
            .expect("runs");
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn check_lists_the_rules_and_warns_about_overlaps() {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/good/overlapping-rules.toml");
    let out = sessiongate(&["check", "--config", file.to_str().expect("utf-8 path")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "an overlap is legal: {stdout}");
    assert!(
        stdout.contains("reports-read: /reports/, GET -> authenticated"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "warning: access.rule[1] (reports-write) gets only the methods reports-read leaves"
        ),
        "{stdout}"
    );
}

/// A running binary, its log lines as they come, and its address.
struct Running {
    child: std::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    log: Vec<String>,
}

impl Running {
    async fn start(config: &Path) -> Self {
        let mut child = Command::new(BIN)
            .args(["run", "--config", config.to_str().expect("utf-8")])
            .env_remove("RUST_LOG")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn");
        let stderr = child.stderr.take().expect("stderr");
        let (lines_tx, lines) = tokio::sync::mpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines_tx.send(line);
            }
        });
        let mut running = Self {
            child,
            lines,
            log: Vec::new(),
        };
        running.wait_for("sessiongate started").await;
        running
    }

    /// Waits (at most 20 s) for a log line whose message contains `text`; returns the line.
    async fn wait_for(&mut self, text: &str) -> serde_json::Value {
        let found = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = self.lines.recv().await {
                self.log.push(line.clone());
                let parsed: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if parsed["message"].as_str().is_some_and(|m| m.contains(text)) {
                    return Some(parsed);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            _ => panic!("no {text:?} in the log: {:#?}", self.log),
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// SIGTERM; the exit must be 0. Returns every log line.
    async fn stop(mut self) -> Vec<String> {
        self.signal("-TERM");
        let mut child = self.child;
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .expect("join")
            .expect("wait");
        assert_eq!(status.code(), Some(0), "SIGTERM exits 0");
        while let Ok(Some(line)) =
            tokio::time::timeout(Duration::from_secs(5), self.lines.recv()).await
        {
            self.log.push(line);
        }
        self.log
    }
}

fn reload_config(
    op: &common::op::Op,
    upstream: std::net::SocketAddr,
    port: u16,
    extra: &str,
) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n{extra_server}\n\
         [upstream]\nurl = \"http://{upstream}\"\n{oidc}\n\
         [session]\nsecrets = [\"c2Vzc2lvbmdhdGUtdGVzdC1zZWNyZXQtMDEyMzQ1Njc4OQ==\"]\n{extra_session}\n\
         [log]\nformat = \"json\"\n",
        oidc = op.oidc_toml(),
        extra_server = extra.split("---").next().unwrap_or(""),
        extra_session = extra.split("---").nth(1).unwrap_or(""),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn status_of(url: &str) -> http::StatusCode {
    common::get(url).await.0
}

/// Waits (bounded) until the gateway at `base` has discovered the provider.
async fn wait_discovered(base: &str) {
    for _ in 0..200 {
        if status_of(&format!("{base}/private")).await != http::StatusCode::SERVICE_UNAVAILABLE {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the provider was never discovered");
}

/// A running binary with a provider and an upstream of the test's own, and the
/// configuration file it reloads.
struct Reloadable {
    upstream: common::Upstream,
    op: common::op::Op,
    _dir: tempfile::TempDir,
    path: PathBuf,
    port: u16,
    base: String,
    running: Running,
}

impl Reloadable {
    async fn start(extra: &str) -> Self {
        let upstream = common::upstream().await;
        let op = common::op::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sessiongate.toml");
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        std::fs::write(&path, reload_config(&op, upstream.addr, port, extra)).expect("write");
        let running = Running::start(&path).await;
        wait_discovered(&base).await;
        Self {
            upstream,
            op,
            _dir: dir,
            path,
            port,
            base,
            running,
        }
    }

    fn rewrite(&self, extra: &str) {
        let text = reload_config(&self.op, self.upstream.addr, self.port, extra);
        std::fs::write(&self.path, text).expect("write");
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// SIGHUP with a good configuration swaps it in while requests are in flight (none fails,
/// the session survives); with a bad one, the messages `check` would give are logged and the
/// running configuration stays.
#[tokio::test]
async fn sighup_reloads_a_good_config_and_refuses_a_bad_one_without_failing_a_request() {
    let mut gateway = Reloadable::start("").await;
    let base = gateway.base.clone();
    let mut browser = common::browser::Browser::new();
    let start = browser.navigate(&format!("{base}/private")).await;
    let callback = common::op::approve(&start.location()).await;
    browser.navigate(&callback).await;
    assert_eq!(
        browser.navigate(&format!("{base}/echo")).await.status,
        http::StatusCode::OK
    );
    assert_eq!(
        status_of(&format!("{base}/open/x")).await,
        http::StatusCode::UNAUTHORIZED
    );

    // Requests in flight all through the reloads: a slow one, and a steady stream.
    let slow = tokio::spawn({
        let (mut browser, url) = (browser.clone(), format!("{base}/slow/1500"));
        async move { browser.fetch(&url).await.status }
    });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stream = tokio::spawn({
        let (stop, mut browser, url) = (stop.clone(), browser.clone(), format!("{base}/echo"));
        async move {
            let (mut ok, mut failed) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match browser.fetch(&url).await.status {
                    http::StatusCode::OK => ok += 1,
                    _ => failed += 1,
                }
            }
            (ok, failed)
        }
    });

    // Let the stream get going, so the reloads land in the middle of it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    gateway.rewrite("---\n[access]\npublic_paths = [\"/open/\"]\n");
    gateway.running.signal("-HUP");
    gateway.running.wait_for("configuration reloaded").await;
    assert_eq!(
        status_of(&format!("{base}/open/x")).await,
        http::StatusCode::OK
    );

    gateway.rewrite("---\nidle_timeout = \"13h\"\n[access]\npublic_paths = []\n");
    gateway.running.signal("-HUP");
    let refused = gateway
        .running
        .wait_for("configuration reload refused")
        .await;
    assert!(
        refused["problems"].as_str().is_some_and(|p| p
            .contains("session.idle_timeout (13h) must not exceed session.absolute_timeout (12h)")),
        "{refused}"
    );
    assert_eq!(
        status_of(&format!("{base}/open/x")).await,
        http::StatusCode::OK,
        "the good configuration stays"
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ok, failed) = stream.await.expect("join");
    assert!(ok > 10, "{ok} requests during the reloads");
    assert_eq!(failed, 0, "no request failed during the reloads");
    assert_eq!(
        slow.await.expect("join"),
        http::StatusCode::OK,
        "the slow request finished"
    );
    gateway.running.stop().await;
}

/// `server.watch_config`: a change to the file reloads it without a signal.
#[tokio::test]
async fn watch_config_reloads_when_the_file_changes() {
    let mut gateway = Reloadable::start("watch_config = true\n").await;
    assert_eq!(
        status_of(&gateway.url("/open/x")).await,
        http::StatusCode::UNAUTHORIZED
    );
    gateway.rewrite("watch_config = true\n---\n[access]\npublic_paths = [\"/open/\"]\n");
    gateway.running.wait_for("configuration reloaded").await;
    assert_eq!(
        status_of(&gateway.url("/open/x")).await,
        http::StatusCode::OK
    );
    gateway.running.stop().await;
}
