//! The scheduled work: the check at minute 15 and 45 of every hour (Asia/Shanghai; the
//! offset is whole hours, so UTC minutes agree) and the 30-minute reminders.
//!
//! A tick runs when the latest :15/:45 boundary has not been handled by this process yet,
//! so a late or missed tick (restart, pause) is caught up at once. Across replicas a
//! transaction-scoped advisory lock lets one replica do the pass; the pass itself changes
//! each appointment at most once, so running it twice is harmless anyway.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, DurationRound, Timelike, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::store::Appointments;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SchedulerConfig {
    pub enabled: bool,
    /// Minutes past the hour of the missed/failed check (the guide: 15 and 45).
    pub check_minutes: Vec<u32>,
    /// Reminder lead time.
    pub reminder_minutes: i64,
    /// How often the loop wakes.
    pub poll_secs: u64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self { enabled: true, check_minutes: vec![15, 45], reminder_minutes: 30, poll_secs: 30 }
    }
}

/// The latest check boundary at or before `now`.
pub fn latest_boundary(now: DateTime<Utc>, minutes: &[u32]) -> Option<DateTime<Utc>> {
    let hour = now.duration_trunc(Duration::hours(1)).ok()?;
    let mut best = None;
    for back in [Duration::zero(), Duration::hours(1)] {
        for m in minutes.iter().filter(|m| **m < 60) {
            let t = hour - back + Duration::minutes(i64::from(*m));
            if t <= now && best.is_none_or(|b| t > b) {
                best = Some(t);
            }
        }
    }
    best
}

const CHECK_LOCK: i64 = 0x0079_7963_6865_636b; // "yycheck"

/// Runs one check pass if this replica wins the lock; returns (missed, failed) or None.
pub async fn check_once(
    store: &Appointments,
    now: DateTime<Utc>,
) -> Result<Option<(usize, usize)>, zhengna_platform::ApiError> {
    let mut lock = store.pool().begin().await?;
    let won: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)").bind(CHECK_LOCK).fetch_one(&mut *lock).await?;
    if !won {
        return Ok(None);
    }
    let result = store.run_due_check(now).await?;
    lock.commit().await?;
    Ok(Some(result))
}

pub async fn run(store: Appointments, cfg: SchedulerConfig, shutdown: CancellationToken) {
    if !cfg.enabled {
        return;
    }
    let mut handled: Option<DateTime<Utc>> = None;
    loop {
        let now = Utc::now();
        let due = latest_boundary(now, &cfg.check_minutes);
        if due.is_some() && due != handled {
            match check_once(&store, now).await {
                Ok(Some((missed, failed))) => {
                    if missed + failed > 0 {
                        tracing::info!(missed, failed, tick = %due.map(|d| d.minute()).unwrap_or_default(), "appointment check");
                    }
                    metrics::counter!("appointment_missed_total").increment(missed as u64);
                    metrics::counter!("appointment_failed_total").increment(failed as u64);
                    handled = due;
                }
                // Another replica holds the lock for this boundary.
                Ok(None) => handled = due,
                Err(e) => tracing::warn!(error = %e, "appointment check failed; retrying next wake"),
            }
        }
        match store.send_reminders(now, Duration::minutes(cfg.reminder_minutes)).await {
            Ok(n) if n > 0 => {
                metrics::counter!("appointment_reminders_total").increment(n as u64);
                tracing::info!(reminders = n, "appointment reminders sent");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "appointment reminders failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(StdDuration::from_secs(cfg.poll_secs.max(1))) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, h, m, s).single().expect("valid")
    }

    #[test]
    fn boundaries_are_quarter_past_and_quarter_to() {
        let m = [15, 45];
        assert_eq!(latest_boundary(at(3, 20, 0), &m), Some(at(3, 15, 0)));
        assert_eq!(latest_boundary(at(3, 45, 0), &m), Some(at(3, 45, 0)));
        assert_eq!(latest_boundary(at(3, 59, 59), &m), Some(at(3, 45, 0)));
        assert_eq!(latest_boundary(at(4, 5, 0), &m), Some(at(3, 45, 0)), "previous hour's :45");
        assert_eq!(latest_boundary(at(4, 14, 59), &m), Some(at(3, 45, 0)));
    }
}
