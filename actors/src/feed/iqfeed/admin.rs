//! IQConnect's Admin port (default 9300): whether IQConnect is connected to DTN, and the optional
//! registration of our app and login.
//!
//! This is the watchdog seed 000's `iqfeed_keep_alive.py` ran beside its ingestors: IQConnect down shows
//! as a refused connection, IQConnect up but cut off from DTN as `S,STATS,...,Not Connected,...` (sent
//! once a second). Either is reported as a retryable error, so the feed shows `reconnecting` with the
//! reason in `/api/feeds` and the feed actor retries with backoff.

use std::time::Duration;

use tokio::time::timeout;

use super::lines::{Line, LineConn};
use super::wire::{parse_level1, Level1, Stats, System};
use super::IqFeedSettings;
use crate::feed::FeedError;

/// Messages of the Admin port, each the reason the feed cannot run or `Ok` for "carry on".
pub struct Admin {
    conn: LineConn,
}

impl Admin {
    /// Connects, registers (when configured) and waits for the first `S,STATS`: an error unless it says
    /// `Connected`. Credentials are sent, never logged nor put in errors.
    pub async fn open(settings: &IqFeedSettings) -> Result<Admin, FeedError> {
        let within = Duration::from_millis(settings.timeout_ms.max(1));
        let mut conn = LineConn::open("Admin port", &settings.host, settings.admin_port, within).await?;
        if !settings.product_id.is_empty() {
            conn.send(&format!("S,REGISTER CLIENT APP,{},{}", settings.product_id, settings.product_version)).await?;
        }
        if !settings.login.is_empty() {
            conn.send(&format!("S,SET LOGINID,{}", settings.login)).await?;
            if !settings.password.is_empty() {
                conn.send(&format!("S,SET PASSWORD,{}", settings.password)).await?;
            }
            conn.send("S,CONNECT").await?;
        }
        let mut admin = Admin { conn };
        let name = admin.conn.name.clone();
        let first = timeout(within, admin.next_stats())
            .await
            .map_err(|_| FeedError::Connect(format!("{name}: no S,STATS within {within:?}")))??;
        check(&first)?;
        Ok(admin)
    }

    /// Waits until IQConnect reports it lost DTN (an error to reconnect on), or the port fails.
    /// Cancel-safe: meant to be raced against the Level 1 port.
    pub async fn watch(&mut self) -> FeedError {
        loop {
            match self.next_stats().await {
                Ok(stats) => {
                    if let Err(e) = check(&stats) {
                        return e;
                    }
                }
                Err(e) => return e,
            }
        }
    }

    /// The next `S,STATS`; other lines (registration replies, malformed ones) are passed over.
    async fn next_stats(&mut self) -> Result<Stats, FeedError> {
        loop {
            if let Line::Text(line) = self.conn.next_line().await? {
                match parse_level1(&line) {
                    Ok(Level1::System(System::Stats(stats))) => return Ok(stats),
                    Ok(Level1::Error(e)) => tracing::warn!(error = e, "IQConnect Admin port reported an error"),
                    _ => {}
                }
            }
        }
    }
}

fn check(stats: &Stats) -> Result<(), FeedError> {
    if stats.connected {
        return Ok(());
    }
    Err(FeedError::Disconnected(format!(
        "IQConnect is not connected to DTN (Admin port S,STATS status {:?})",
        stats.status
    )))
}
