//! Prints a `Cookie` header value holding a fresh, valid session for `benches/proxy_load.sh`,
//! sealed with the secret given as the first argument, so the load benchmark can measure
//! the authenticated path without logging in through a provider.

use sessiongate::clock::{Clock, OsRandom, SystemClock};
use sessiongate::session::{Carried, Scheme, Session, SessionCookies};
use sessiongate::{Config, Environment};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::args()
        .nth(1)
        .ok_or("usage: bench_session_cookie SECRET")?;
    let text = format!(
        "[server]\npublic_url = \"http://127.0.0.1\"\n[upstream]\nurl = \"http://127.0.0.1:1\"\n\
         [oidc]\nissuer = \"http://127.0.0.1:1\"\nclient_id = \"bench\"\n[session]\nsecrets = [\"{secret}\"]\n"
    );
    let config = Config::parse(&text, &Environment::default())?;
    let cookies = SessionCookies::new(&config.session, Scheme::Http)?;
    let now = SystemClock.now();
    let mut session = Session::start(&OsRandom, "bench-user".to_string(), now);
    session
        .claims
        .insert("email".into(), "bench@example.com".into());
    session
        .claims
        .insert("groups".into(), serde_json::json!(["staff", "admins"]));
    let set_cookies = cookies.write(&session, now, Carried::default(), &OsRandom)?;
    let pairs: Vec<String> = set_cookies
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(str::to_string)
        .collect();
    println!("{}", pairs.join("; "));
    Ok(())
}
