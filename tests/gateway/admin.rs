//! The admin listener: liveness and readiness, apart from the main listener.

use http::StatusCode;

use crate::common;

#[tokio::test]
async fn healthz_and_readyz_answer_on_the_admin_listener_only() {
    let upstream = common::upstream().await;
    let op = common::op::start().await;
    let text = format!(
        "{}\n[server]\nadmin_listen = \"127.0.0.1:0\"\n",
        op.oidc_toml()
    );
    let gateway = common::start(common::config(upstream.addr, &text)).await;
    crate::login::wait_ready(&gateway).await;
    let admin = gateway.admin.expect("admin listener");
    let (status, _, body) = common::get(&format!("http://{admin}/healthz")).await;
    assert_eq!((status, body.as_ref()), (StatusCode::OK, b"ok\n".as_ref()));
    let (status, _, body) = common::get(&format!("http://{admin}/readyz")).await;
    assert_eq!(
        (status, body.as_ref()),
        (StatusCode::OK, b"ready\n".as_ref())
    );
    // The main listener does not serve them: /healthz there is the application's (protected) path.
    let (status, headers, _) = common::get(&gateway.url("/healthz")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!headers.contains_key("x-upstream"));
    gateway.shutdown().await;
}
