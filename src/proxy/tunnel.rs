//! Relaying upgraded WebSocket connections, frame by frame.
//!
//! Each tunnel is a task the gateway tracks, so shutdown can wait for open sockets up to its
//! grace period and then close the rest. The relay reads only frame headers (RFC 6455 §5.2)
//! and copies payloads through untouched, so it knows where frames begin: when the session
//! behind a socket ends, it finishes the frame under way in each direction and sends both
//! ends a close frame (1008, policy violation) before dropping the connections — the client
//! learns why, and the upstream is told the same.

use std::sync::Arc;
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a frame under way may take to finish once the socket is to close.
const FINISH_FRAME: Duration = Duration::from_secs(1);

/// Close code 1008: the session that opened the socket is over.
const POLICY_VIOLATION: u16 = 1008;

/// A reason to close a socket that is not its ends' own.
#[derive(Clone)]
pub(crate) struct Ending {
    /// Cancelled when the socket must close.
    pub(crate) token: CancellationToken,
    /// Held for as long as the socket is open, so its owner can tell it has gone.
    pub(crate) alive: Arc<()>,
    /// Set on every frame from the client, when client frames count as activity.
    pub(crate) activity: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// Why the session ended, set before `token` is cancelled (for the metrics).
    pub(crate) reason: Arc<std::sync::OnceLock<&'static str>>,
}

/// The set of open tunnels.
#[derive(Clone, Default)]
pub(crate) struct Tunnels {
    tasks: TaskTracker,
    /// Cancelled when the grace period is over: every tunnel closes both ends.
    closing: CancellationToken,
}

impl Tunnels {
    pub(crate) fn spawn(&self, client: OnUpgrade, upstream: OnUpgrade, ending: Option<Ending>) {
        let closing = self.closing.clone();
        self.tasks.spawn(async move {
            let (client, upstream) = match tokio::try_join!(client, upstream) {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::debug!(error = %e, "upgrade did not complete");
                    return;
                }
            };
            let (end, _alive, activity, reason) = match ending {
                Some(e) => (e.token, Some(e.alive), e.activity, Some(e.reason)),
                None => (CancellationToken::new(), None, None, None),
            };
            crate::ops::metrics::websocket_opened();
            let (client, upstream) = (TokioIo::new(client), TokioIo::new(upstream));
            let how = relay(client, upstream, &end, &closing, activity.as_deref()).await;
            let how = match (how, reason.as_ref().and_then(|r| r.get())) {
                ("session_ended", Some(reason)) => *reason,
                (how, _) => how,
            };
            crate::ops::metrics::websocket_closed(how);
            tracing::debug!(how, "WebSocket closed");
        });
    }

    /// How many tunnels are open.
    pub(crate) fn open(&self) -> usize {
        self.tasks.len()
    }

    /// Waits for every tunnel to end by itself.
    pub(crate) async fn drained(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Ends every tunnel now.
    pub(crate) fn close_all(&self) {
        self.closing.cancel();
    }
}

/// Relays both directions until both have ended, `end` asks for a close (both ends get a
/// close frame), or shutdown drops the connections. Returns how it ended.
async fn relay<C, U>(
    client: C,
    upstream: U,
    end: &CancellationToken,
    closing: &CancellationToken,
    activity: Option<&std::sync::atomic::AtomicBool>,
) -> &'static str
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (client_read, client_write) = tokio::io::split(client);
    let (upstream_read, upstream_write) = tokio::io::split(upstream);
    // Frames to the upstream are the client's, and must stay masked (RFC 6455 §5.3).
    let to_upstream = pump(client_read, upstream_write, true, end, activity);
    let to_client = pump(upstream_read, client_write, false, end, None);
    tokio::select! {
        (_, _) = async { tokio::join!(to_upstream, to_client) } => {
            if end.is_cancelled() { "session_ended" } else { "closed" }
        }
        () = closing.cancelled() => "shutdown",
    }
}

/// Copies frames from `from` to `to` until `from` ends (then `to` is shut down) or `end` is
/// cancelled (then `to` gets a close frame at the next frame boundary).
async fn pump<R, W>(
    mut from: R,
    mut to: W,
    masked: bool,
    end: &CancellationToken,
    activity: Option<&std::sync::atomic::AtomicBool>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let header = tokio::select! {
            biased;
            () = end.cancelled() => break,
            header = read_header(&mut from) => header,
        };
        let Ok(Some((header, payload_len))) = header else {
            let _ = to.shutdown().await;
            return;
        };
        if let Some(activity) = activity {
            activity.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let forwarded = async {
            to.write_all(&header).await?;
            copy_exactly(&mut from, &mut to, payload_len, &mut buffer).await?;
            to.flush().await
        };
        let finish_in_time = async {
            end.cancelled().await;
            tokio::time::sleep(FINISH_FRAME).await;
        };
        tokio::select! {
            result = forwarded => if result.is_err() {
                let _ = to.shutdown().await;
                return;
            },
            // A frame that will not finish is not waited for: the connection just drops.
            () = finish_in_time => return,
        }
    }
    let _ = to.write_all(&close_frame(masked, "session ended")).await;
    let _ = to.flush().await;
    let _ = to.shutdown().await;
}

/// A frame header as read (to forward it exactly), and its payload length. `None` at a
/// clean end of stream before a new frame.
async fn read_header<R: AsyncRead + Unpin>(
    from: &mut R,
) -> std::io::Result<Option<(Vec<u8>, u64)>> {
    let mut first = [0u8; 2];
    match from.read(&mut first[..1]).await? {
        0 => return Ok(None),
        _ => from.read_exact(&mut first[1..]).await?,
    };
    let mut header = first.to_vec();
    let length = match first[1] & 0x7f {
        126 => {
            let mut ext = [0u8; 2];
            from.read_exact(&mut ext).await?;
            header.extend_from_slice(&ext);
            u64::from(u16::from_be_bytes(ext))
        }
        127 => {
            let mut ext = [0u8; 8];
            from.read_exact(&mut ext).await?;
            header.extend_from_slice(&ext);
            u64::from_be_bytes(ext)
        }
        short => u64::from(short),
    };
    if first[1] & 0x80 != 0 {
        let mut mask = [0u8; 4];
        from.read_exact(&mut mask).await?;
        header.extend_from_slice(&mask);
    }
    Ok(Some((header, length)))
}

async fn copy_exactly<R, W>(
    from: &mut R,
    to: &mut W,
    mut remaining: u64,
    buffer: &mut [u8],
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    while remaining > 0 {
        let want = usize::try_from(remaining.min(buffer.len() as u64)).unwrap_or(buffer.len());
        let read = from.read(&mut buffer[..want]).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        to.write_all(&buffer[..read]).await?;
        remaining -= read as u64;
    }
    Ok(())
}

/// A close frame with code 1008 and `reason`; masked (toward the upstream) with a random key.
fn close_frame(masked: bool, reason: &str) -> Vec<u8> {
    let mut payload = POLICY_VIOLATION.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    payload.truncate(125);
    let mut frame = vec![0x88];
    if masked {
        let mut key = [0u8; 4];
        // Masking only keeps intermediaries from reading the frame as something else; a
        // fixed key would do no harm beyond that, so a failing source is not fatal.
        let _ = getrandom::fill(&mut key);
        frame.push(0x80 | payload.len() as u8);
        frame.extend_from_slice(&key);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        frame.push(payload.len() as u8);
        frame.extend_from_slice(&payload);
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_frames_carry_1008_and_the_reason_masked_toward_the_upstream() {
        let plain = close_frame(false, "session ended");
        assert_eq!(&plain[..4], &[0x88, 15, 0x03, 0xf0]);
        assert_eq!(&plain[4..], b"session ended");
        let masked = close_frame(true, "session ended");
        assert_eq!((masked[0], masked[1]), (0x88, 0x80 | 15));
        let key = &masked[2..6];
        let unmasked: Vec<u8> = masked[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        assert_eq!(&unmasked[..2], &1008u16.to_be_bytes());
        assert_eq!(&unmasked[2..], b"session ended");
    }

    #[tokio::test]
    async fn frames_pass_whole_and_an_end_closes_both_sides_at_a_boundary() {
        let (client, mut client_peer) = tokio::io::duplex(1 << 16);
        let (upstream, mut upstream_peer) = tokio::io::duplex(1 << 16);
        let end = CancellationToken::new();
        let closing = CancellationToken::new();
        let relay = tokio::spawn({
            let (end, closing) = (end.clone(), closing.clone());
            async move { relay(client, upstream, &end, &closing, None).await }
        });
        // A masked text frame from the client, 126-length form, arrives byte for byte.
        let mut frame = vec![0x81, 0x80 | 126, 0x01, 0x00, 1, 2, 3, 4];
        frame.extend(std::iter::repeat_n(b'x', 256));
        client_peer.write_all(&frame).await.unwrap();
        let mut seen = vec![0u8; frame.len()];
        upstream_peer.read_exact(&mut seen).await.unwrap();
        assert_eq!(seen, frame);

        end.cancel();
        assert_eq!(relay.await.unwrap(), "session_ended");
        let mut to_client = Vec::new();
        client_peer.read_to_end(&mut to_client).await.unwrap();
        assert_eq!(
            &to_client[..4],
            &[0x88, 15, 0x03, 0xf0],
            "1008 to the client"
        );
        let mut to_upstream = Vec::new();
        upstream_peer.read_to_end(&mut to_upstream).await.unwrap();
        assert_eq!(to_upstream[0], 0x88, "a close frame to the upstream");
        assert_eq!(to_upstream[1], 0x80 | 15, "masked");
    }
}
