//! Property tests: whatever a session holds, the codec gives it back; whatever a sealed
//! value is, the chunked cookie carries it whole.

use http::{HeaderMap, HeaderValue};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

use super::model::{Session, SessionId};
use super::{Carried, ChunkedCookie, Scheme, codec};
use crate::secret::Secret;

fn text() -> impl Strategy<Value = String> {
    // Any Unicode, including what JSON must escape.
    vec(any::<char>(), 0..40).prop_map(|chars| chars.into_iter().collect())
}

fn claim() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        text().prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        vec(text(), 0..6).prop_map(serde_json::Value::from),
    ]
}

fn session() -> impl Strategy<Value = Session> {
    (
        any::<[u8; 16]>(),
        text(),
        btree_map(text(), claim(), 0..8),
        proptest::option::of(text()),
        (any::<u32>(), any::<u32>()),
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::option::of(any::<u32>()),
    )
        .prop_map(
            |(id, subject, claims, idp_sid, (created, seen), refresh, id_token, expires)| Session {
                id: SessionId::from_bytes(id),
                subject,
                claims,
                idp_sid,
                created_at: u64::from(created),
                last_seen: u64::from(created) + u64::from(seen),
                refresh_token: refresh.map(Secret::new),
                id_token: id_token.map(Secret::new),
                access_token: None,
                tokens_expire_at: expires.map(u64::from),
            },
        )
}

proptest! {
    #[test]
    fn the_codec_gives_every_session_back(session in session()) {
        let bytes = codec::encode(&session);
        prop_assert_eq!(codec::decode(&bytes).expect("decodes"), session);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in vec(any::<u8>(), 0..600)) {
        let _ = codec::decode(&bytes);
    }

    #[test]
    fn chunked_cookies_carry_any_sealed_value_whole(
        value in "[A-Za-z0-9_-]{0,12000}",
        secure in any::<bool>(),
    ) {
        let scheme = if secure { Scheme::Https } else { Scheme::Http };
        let cookie = ChunkedCookie::new("sessiongate", scheme).expect("name");
        let Ok(set) = cookie.set(&value, 3600, Carried::default()) else {
            // Too large for the chunks there are: refused, never cut.
            prop_assert!(value.len() > 3000);
            return Ok(());
        };
        let pairs: Vec<&str> = set
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .collect();
        let mut headers = HeaderMap::new();
        headers.insert(http::header::COOKIE, HeaderValue::from_str(&pairs.join("; ")).expect("header"));
        let collected = cookie.collect(&headers);
        let expected = (!value.is_empty()).then(|| value.clone());
        prop_assert_eq!(collected.value.expect("reassembles"), expected);
    }
}
