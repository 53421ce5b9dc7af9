//! Forward-auth behind a real nginx: Debian's nginx runs `config/forward-auth/nginx.conf`
//! (only its addresses changed) in front of the upstream, asks the gateway about every
//! request with `auth_request`, and a browser logs in through it.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use http::StatusCode;
use sessiongate::clock::{Clock, ManualClock, SeededRandom, SystemClock};

use crate::common::browser::Browser;
use crate::common::op;
use crate::common::{self, Echo};

struct Nginx {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Starts nginx with the example server block, its addresses pointed at this test's servers.
async fn nginx(port: u16, gateway: std::net::SocketAddr, upstream: std::net::SocketAddr) -> Nginx {
    let example = include_str!("../../config/forward-auth/nginx.conf");
    let server = example
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
        .replace("127.0.0.1:4180", &gateway.to_string())
        .replace("127.0.0.1:8080", &upstream.to_string());
    assert_ne!(server, example, "the example's addresses were found");
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().display();
    let conf = format!(
        "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{}}\nhttp {{\naccess_log off;\nclient_body_temp_path {d}/body;\n\
         proxy_temp_path {d}/proxy;\nfastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\n\
         scgi_temp_path {d}/scgi;\n{server}\n}}\n"
    );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf).expect("write nginx.conf");
    let child = Command::new("nginx")
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx runs (apt-get install nginx; .ci/run installs it)");
    // Owned at once, so a failure below still stops it.
    let nginx = Nginx { child, _dir: dir };
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return nginx;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let log = std::fs::read_to_string(nginx._dir.path().join("error.log")).unwrap_or_default();
    panic!("nginx never listened on {port}: {log}");
}

#[tokio::test]
async fn a_browser_logs_in_through_nginx_and_the_application_gets_the_identity() {
    let upstream = common::upstream().await;
    let clock = ManualClock::new(SystemClock.now());
    let op = op::start_with_clock(Some(clock.clone())).await;
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let text = format!(
        "{}\n[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\npublic_url = \"{origin}\"\n\
         [[access.rule]]\npath = \"/finance/\"\nallowed_groups = [\"finance\"]\n",
        op.oidc_toml()
    );
    let deps = sessiongate::Deps {
        clock: std::sync::Arc::new(clock.clone()),
        random: std::sync::Arc::new(SeededRandom::new(11)),
    };
    let gateway = common::start_behind(common::config(upstream.addr, &text), deps).await;
    crate::login::wait_ready(&gateway).await;
    let _nginx = nginx(port, gateway.addr, upstream.addr).await;

    let mut browser = Browser::new();
    let denied = browser.navigate(&format!("{origin}/private/page")).await;
    assert_eq!(denied.status, StatusCode::FOUND, "{}", denied.text());
    assert_eq!(
        denied.location(),
        format!("{origin}/oauth2/start?rd=/private/page")
    );
    let start = browser.navigate(&denied.location()).await;
    assert_eq!(start.status, StatusCode::FOUND);
    let callback = op::approve(&start.location()).await;
    assert!(
        callback.starts_with(&origin),
        "the callback comes back through nginx"
    );
    let landed = browser.navigate(&callback).await;
    assert_eq!(landed.status, StatusCode::FOUND);
    assert_eq!(landed.location(), "/private/page");

    let page = browser
        .request(
            "GET",
            &format!("{origin}/private/page"),
            &[("accept", "text/html"), ("x-forwarded-user", "forged")],
            common::full(""),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let echo = Echo::parse(&page.body);
    assert_eq!(echo.header("x-forwarded-user"), vec!["alice"]);
    assert_eq!(echo.header("x-forwarded-email"), vec!["alice@example.com"]);
    assert_eq!(echo.header("x-forwarded-groups"), vec!["staff,admins"]);

    let finance = browser.navigate(&format!("{origin}/finance/q1")).await;
    assert_eq!(
        finance.status,
        StatusCode::FORBIDDEN,
        "a rule denies through nginx"
    );

    // The session slides through nginx as well: a request after the touch interval brings
    // a fresh cookie back.
    clock.advance(Duration::from_secs(120));
    let slid = browser.navigate(&format!("{origin}/private/page")).await;
    assert_eq!(slid.status, StatusCode::OK);
    assert!(
        slid.set_cookies()
            .iter()
            .any(|c| c.starts_with("sessiongate=")),
        "{:?}",
        slid.set_cookies()
    );
    gateway.shutdown().await;
}
