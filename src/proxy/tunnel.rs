//! Relaying upgraded connections (WebSocket and other `Upgrade` protocols) byte for byte.
//!
//! Each tunnel is a task the gateway tracks, so shutdown can wait for open sockets up to its
//! grace period and then close the rest.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The set of open tunnels.
#[derive(Clone, Default)]
pub(crate) struct Tunnels {
    tasks: TaskTracker,
    /// Cancelled when the grace period is over: every tunnel closes both ends.
    closing: CancellationToken,
}

impl Tunnels {
    pub(crate) fn spawn(&self, client: OnUpgrade, upstream: OnUpgrade) {
        let closing = self.closing.clone();
        self.tasks.spawn(async move {
            let (client, upstream) = match tokio::try_join!(client, upstream) {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::debug!(error = %e, "upgrade did not complete");
                    return;
                }
            };
            let mut client = TokioIo::new(client);
            let mut upstream = TokioIo::new(upstream);
            tokio::select! {
                result = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "tunnel closed with an error");
                    }
                }
                () = closing.cancelled() => tracing::debug!("tunnel closed by shutdown"),
            }
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
