//! A request body nobody read. When the gateway answers a request itself — 401, 403, 503, an
//! upstream that is down or answered early — it has no use for the body; but an HTTP/1.1
//! connection closed with unread bytes in it is reset by the kernel, and the client, often
//! still sending, gets a broken connection instead of the answer (a kept-alive one fails its
//! next request). So the rest of such a body is read and dropped, within a limit of bytes and
//! time, before the answer goes out; past the limit the answer says `Connection: close`.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, Version};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;

/// Read and dropped at most: a large upload refused with a 401 is still answered cleanly.
const MAX_BYTES: usize = 64 << 20;
/// A client trickling its body does not hold the answer (and the handler) longer than this.
const MAX_TIME: Duration = Duration::from_secs(5);

/// Where a body dropped before its end is put back, for [`Unread::settle`].
#[derive(Default)]
pub(crate) struct Unread(Option<Arc<Mutex<Option<Incoming>>>>);

impl Unread {
    /// The request with its body watched: dropped before its end, the body comes back here.
    /// Only HTTP/1 bodies are: HTTP/2 ends a stream without touching the connection.
    pub(crate) fn watch(request: Request<Incoming>) -> (Request<Body>, Self) {
        if request.version() >= Version::HTTP_2 || request.body().is_end_stream() {
            return (request.map(Body::new), Self(None));
        }
        let slot = Arc::new(Mutex::new(None));
        let request = request.map(|inner| {
            Body::new(Watched {
                inner: Some(inner),
                finished: false,
                slot: slot.clone(),
            })
        });
        (request, Self(Some(slot)))
    }

    /// Reads what is left of an abandoned body before `response` goes out.
    pub(crate) async fn settle(self, response: &mut Response<Body>) {
        let Some(rest) = self.0.and_then(|slot| slot.lock().ok()?.take()) else {
            return;
        };
        if !drain(rest).await {
            response
                .headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
}

/// Whether the body ended within the limits.
async fn drain(mut body: Incoming) -> bool {
    let reading = async {
        let mut read = 0;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return false };
            read += frame.data_ref().map_or(0, Bytes::len);
            if read > MAX_BYTES {
                return false;
            }
        }
        true
    };
    tokio::time::timeout(MAX_TIME, reading)
        .await
        .unwrap_or(false)
}

struct Watched {
    inner: Option<Incoming>,
    finished: bool,
    slot: Arc<Mutex<Option<Incoming>>>,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.finished = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Incoming::size_hint)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        if !self.finished && !inner.is_end_stream() {
            if let Ok(mut slot) = self.slot.lock() {
                *slot = Some(inner);
            }
        }
    }
}
