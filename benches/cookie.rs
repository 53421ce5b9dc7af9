//! The session cookie's cost per request on realistic token sets: encoding and sealing a
//! session (done when the cookie is rewritten), opening and decoding it (done on every
//! request), next to baselines measured in the same run so figures read as ratios:
//! serde_json of the same session, and copying the cookie's bytes.
//!
//! `cargo bench --bench cookie`

mod fixtures;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use sessiongate::clock::OsRandom;
use sessiongate::session::{Carried, Scheme, SessionCookies};

use fixtures::JsonSession;

fn cookies() -> SessionCookies {
    SessionCookies::new(&fixtures::session_config(), Scheme::Https).expect("valid config")
}

/// The `Cookie` header a browser sends back after these `Set-Cookie` values.
fn request_headers(set_cookies: &[HeaderValue]) -> HeaderMap {
    let pairs: Vec<&str> = set_cookies
        .iter()
        .map(|h| h.to_str().unwrap().split(';').next().unwrap())
        .collect();
    let mut headers = HeaderMap::new();
    headers.insert(COOKIE, HeaderValue::try_from(pairs.join("; ")).unwrap());
    headers
}

fn cookie(c: &mut Criterion) {
    let cookies = cookies();
    let mut group = c.benchmark_group("cookie");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    let fixtures = fixtures::all();
    // The largest case as well: Entra ID's access token too, three chunks.
    let entra = fixtures.last().expect("three fixtures");
    let entra_with_access_token = (
        "Entra ID + access token",
        fixtures::with_access_token(entra),
    );
    let inputs = fixtures
        .iter()
        .map(|f| (f.name, f.session.clone()))
        .chain([entra_with_access_token]);
    for (name, session) in inputs {
        let session = &session;
        let now = session.created_at;
        let sealed = cookies.seal(session, &OsRandom);
        let set = cookies
            .write(session, now, Carried::default(), &OsRandom)
            .expect("fits");
        let headers = request_headers(&set);
        assert!(
            cookies.read(&headers).session().is_some(),
            "{name} reads back"
        );
        let json = serde_json::to_vec(&JsonSession::of(session)).unwrap();
        group.throughput(Throughput::Bytes(sealed.len() as u64));

        group.bench_with_input(BenchmarkId::new("encode+seal", name), session, |b, s| {
            b.iter(|| cookies.seal(black_box(s), &OsRandom))
        });
        group.bench_with_input(BenchmarkId::new("open+decode", name), &sealed, |b, v| {
            b.iter(|| cookies.open(black_box(v)).expect("opens"))
        });
        group.bench_with_input(BenchmarkId::new("write", name), session, |b, s| {
            b.iter(|| cookies.write(black_box(s), now, Carried::default(), &OsRandom))
        });
        group.bench_with_input(BenchmarkId::new("read", name), &headers, |b, h| {
            b.iter(|| cookies.read(black_box(h)))
        });
        group.bench_with_input(
            BenchmarkId::new("baseline json encode", name),
            session,
            |b, s| b.iter(|| serde_json::to_vec(&JsonSession::of(black_box(s))).unwrap()),
        );
        group.bench_with_input(
            BenchmarkId::new("baseline json decode", name),
            &json,
            |b, j| b.iter(|| serde_json::from_slice::<JsonSession>(black_box(j)).unwrap()),
        );
        group.bench_with_input(
            BenchmarkId::new("baseline memcpy", name),
            &sealed,
            |b, v| b.iter(|| black_box(v.as_bytes()).to_vec()),
        );
    }
    group.finish();
}

criterion_group!(benches, cookie);
criterion_main!(benches);
