//! Cross-replica fan-out of "conversation X has a new message" via PostgreSQL
//! LISTEN/NOTIFY. The notification is sent inside the storing transaction, so it is
//! delivered exactly when the message becomes visible, to every replica.
//!
//! Notifications are only wake-ups: subscribers always read the messages themselves from
//! the database after their last seq, so a lost or coalesced wake-up cannot lose a message.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use zhengna_platform::StartupError;

pub const CHANNEL: &str = "zhengna_session_messages";

/// A wake-up for one conversation, or for all (`None`) after the listener reconnected.
#[derive(Debug, Clone, Copy)]
pub struct Wake(pub Option<Uuid>);

#[derive(Clone)]
pub struct Hub {
    tx: broadcast::Sender<Wake>,
}

impl Hub {
    pub async fn start(pool: PgPool, shutdown: CancellationToken) -> Result<Self, StartupError> {
        let (tx, _) = broadcast::channel(4096);
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(CHANNEL).await?;
        let sender = tx.clone();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    n = listener.try_recv() => n,
                };
                match next {
                    Ok(Some(n)) => {
                        // An unparsable payload wakes everyone rather than no one.
                        let _ = sender.send(Wake(Uuid::parse_str(n.payload()).ok()));
                    }
                    // The connection dropped and was re-established: notifications may
                    // have been missed, so every subscriber re-reads.
                    Ok(None) => {
                        let _ = sender.send(Wake(None));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "session listener error");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        let _ = sender.send(Wake(None));
                    }
                }
            }
        });
        Ok(Self { tx })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Wake> {
        self.tx.subscribe()
    }
}
