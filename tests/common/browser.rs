//! A minimal browser for tests: a cookie jar that honours `Set-Cookie` (including deletion
//! by `Max-Age=0`) and sends what it holds, with redirects followed by hand so tests can
//! look at every hop.
#![allow(dead_code)]

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};

use super::{BoxBody, full, send};

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn location(&self) -> String {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    }
}

#[derive(Default, Clone)]
pub struct Browser {
    pub jar: BTreeMap<String, String>,
}

impl Browser {
    pub fn new() -> Self {
        Self::default()
    }

    fn remember(&mut self, headers: &HeaderMap) {
        for value in headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            let Ok(cookie) = cookie::Cookie::parse(value.to_string()) else {
                continue;
            };
            let deleted = cookie
                .max_age()
                .is_some_and(|age| age.is_zero() || age.is_negative());
            if deleted || cookie.value().is_empty() {
                self.jar.remove(cookie.name());
            } else {
                self.jar
                    .insert(cookie.name().to_string(), cookie.value().to_string());
            }
        }
    }

    pub fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Sends a request with the jar's cookies and `extra` headers; keeps what it sets.
    pub async fn request(
        &mut self,
        method: &str,
        url: &str,
        extra: &[(&str, &str)],
        body: BoxBody,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri(url);
        if !self.jar.is_empty() {
            builder = builder.header("cookie", self.cookie_header());
        }
        for (name, value) in extra {
            builder = builder.header(*name, *value);
        }
        let (status, headers, body) =
            send(&super::client(), builder.body(body).expect("request")).await;
        self.remember(&headers);
        Reply {
            status,
            headers,
            body,
        }
    }

    /// A top-level navigation, as a browser makes it.
    pub async fn navigate(&mut self, url: &str) -> Reply {
        self.request(
            "GET",
            url,
            &[
                ("accept", "text/html,*/*;q=0.8"),
                ("sec-fetch-mode", "navigate"),
            ],
            full(""),
        )
        .await
    }

    /// A fetch() from a page's script.
    pub async fn fetch(&mut self, url: &str) -> Reply {
        self.request(
            "GET",
            url,
            &[("accept", "application/json"), ("sec-fetch-mode", "cors")],
            full(""),
        )
        .await
    }
}
