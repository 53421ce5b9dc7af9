//! Prints a `Cookie` header value holding a fresh, valid session for `benches/proxy_load.sh`,
//! sealed with the secret given as the first argument, so the load benchmark can measure
//! the authenticated path without logging in through a provider. With a Redis URL and key
//! prefix as well, the session is stored in Redis and the cookie carries its ticket.
//!
//!   bench_session_cookie SECRET [REDIS_URL PREFIX]
//!   bench_session_cookie SECRET --count N     # N distinct sessions, one Cookie value a line

use sessiongate::clock::{Clock, OsRandom, SystemClock};
use sessiongate::session::store::SessionStore;
use sessiongate::session::{Carried, Scheme, Session};
use sessiongate::{Config, Environment};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let secret = args
        .next()
        .ok_or("usage: bench_session_cookie SECRET [REDIS_URL PREFIX]")?;
    let (mut count, mut store) = (1, String::new());
    match (args.next(), args.next()) {
        (Some(flag), Some(n)) if flag == "--count" => count = n.parse()?,
        (Some(url), Some(prefix)) => {
            store =
                format!("store = \"redis\"\nredis_url = \"{url}\"\nredis_prefix = \"{prefix}\"\n");
        }
        _ => {}
    }
    let text = format!(
        "[server]\npublic_url = \"http://127.0.0.1\"\n[upstream]\nurl = \"http://127.0.0.1:1\"\n\
         [oidc]\nissuer = \"http://127.0.0.1:1\"\nclient_id = \"bench\"\n\
         [session]\nsecrets = [\"{secret}\"]\n{store}"
    );
    let config = Config::parse(&text, &Environment::default())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let lines = runtime.block_on(async {
        let store = SessionStore::new(&config.session, Scheme::Http)?;
        let now = SystemClock.now();
        let mut lines = Vec::with_capacity(count);
        for _ in 0..count {
            let mut session = Session::start(&OsRandom, "bench-user".to_string(), now);
            session
                .claims
                .insert("email".into(), "bench@example.com".into());
            session
                .claims
                .insert("groups".into(), serde_json::json!(["staff", "admins"]));
            let cookies = store
                .create(&session, Carried::default(), now, &OsRandom)
                .await?;
            let pairs: Vec<String> = cookies
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter_map(|v| v.split(';').next())
                .map(str::to_string)
                .collect();
            lines.push(pairs.join("; "));
        }
        Ok::<_, Box<dyn std::error::Error>>(lines)
    })?;
    println!("{}", lines.join("\n"));
    Ok(())
}
