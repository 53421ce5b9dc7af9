//! What the session cookie costs on realistic token sets: characters on the wire and the
//! number of cookies, for the binary payload and, for comparison, the same session as JSON.
//! `cargo test --test session_cookie_sizes -- --nocapture` prints the table.

#[path = "../benches/fixtures/mod.rs"]
mod fixtures;

use http::HeaderValue;
use sessiongate::clock::SeededRandom;
use sessiongate::session::{Carried, KeyRing, Purpose, Scheme, Session, SessionCookies};

/// (characters of the sealed value, cookies written, bytes of the `Cookie` header sent back)
fn measure(cookies: &SessionCookies, session: &Session) -> (usize, usize, usize) {
    let random = SeededRandom::new(1);
    let sealed = cookies.seal(session, &random).len();
    let set: Vec<HeaderValue> = cookies
        .write(session, session.created_at, Carried::default(), &random)
        .expect("fits");
    let sent_back: usize = set
        .iter()
        .map(|h| h.to_str().unwrap().split(';').next().unwrap().len())
        .sum::<usize>()
        + 2 * (set.len() - 1);
    (sealed, set.len(), sent_back)
}

fn sealed_json_len(session: &Session) -> usize {
    let ring = KeyRing::new(&fixtures::session_config().secrets).unwrap();
    let json = serde_json::to_vec(&fixtures::JsonSession::of(session)).unwrap();
    ring.seal(
        Purpose::Session,
        "__Host-sessiongate",
        &json,
        &SeededRandom::new(1),
    )
    .len()
}

#[test]
fn cookie_sizes_on_the_fixtures() {
    let cookies = SessionCookies::new(&fixtures::session_config(), Scheme::Https).unwrap();
    println!(
        "{:<14} {:>8} {:>8} {:>12} {:>10} | {:>14} {:>8}",
        "fixture", "sealed", "cookies", "Cookie hdr", "as JSON", "+access token", "cookies"
    );
    let mut counts = Vec::new();
    for fixture in fixtures::all() {
        let (sealed, count, header) = measure(&cookies, &fixture.session);
        let json = sealed_json_len(&fixture.session);
        let with_access = fixtures::with_access_token(&fixture);
        let (sealed_access, count_access, _) = measure(&cookies, &with_access);
        println!(
            "{:<14} {sealed:>8} {count:>8} {header:>12} {json:>10} | {sealed_access:>14} {count_access:>8}",
            fixture.name
        );
        assert!(sealed < json, "the binary payload is smaller than JSON");
        counts.push((fixture.name, count));
    }
    // A regression guard: more cookies per request is a visible cost on every request.
    assert_eq!(
        counts,
        [("Azure AD B2C", 1), ("Keycloak", 1), ("Entra ID", 2)]
    );
}
