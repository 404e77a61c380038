//! PostgreSQL pools and embedded migrations. Each service owns one database; in dev and test
//! it is created when missing.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use crate::StartupError;
use crate::config::Secret;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DbConfig {
    /// `postgres://user@host:port/database`; may carry a password, hence secret.
    pub url: Secret,
    pub max_connections: u32,
    /// Create the database when it does not exist (dev and test; off in production).
    pub create_if_missing: bool,
}

impl DbConfig {
    pub fn local(database: &str) -> Self {
        Self {
            url: Secret::new(format!("postgres://postgres@127.0.0.1:5432/{database}")),
            max_connections: 10,
            create_if_missing: true,
        }
    }
}

impl Default for DbConfig {
    fn default() -> Self {
        Self { url: Secret::default(), max_connections: 10, create_if_missing: false }
    }
}

/// Connects (creating the database if allowed and missing) and runs `migrator`.
pub async fn connect(cfg: &DbConfig, migrator: &Migrator) -> Result<PgPool, StartupError> {
    if cfg.url.is_empty() {
        return Err(StartupError::Config("db.url is not set".into()));
    }
    let opts: PgConnectOptions =
        cfg.url.expose().parse().map_err(|e: sqlx::Error| StartupError::Config(format!("db.url: {e}")))?;
    let opts = opts.log_statements(tracing::log::LevelFilter::Trace);
    if cfg.create_if_missing {
        create_database(&opts).await?;
    }
    let pool = PgPoolOptions::new()
        .max_connections(cfg.max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(opts)
        .await?;
    migrator.run(&pool).await?;
    Ok(pool)
}

async fn create_database(opts: &PgConnectOptions) -> Result<(), StartupError> {
    let Some(name) = opts.get_database().map(str::to_owned) else {
        return Ok(());
    };
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(StartupError::Config(format!("database name `{name}` must be [A-Za-z0-9_]")));
    }
    let mut conn = opts.clone().database("postgres").connect().await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&mut conn)
        .await?;
    if !exists {
        // The name is checked above; identifiers cannot be bound as parameters.
        let sql = format!("CREATE DATABASE \"{name}\"");
        match sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another process created it between the check and the create.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => {}
            Err(e) => return Err(e.into()),
        }
    }
    conn.close().await?;
    Ok(())
}

/// Cross-replica wake-ups through PostgreSQL LISTEN/NOTIFY: one listening connection per
/// process fans each notification out to local subscribers. Payloads are hints only;
/// subscribers re-read what they need, so a lost or coalesced wake-up loses nothing. After
/// the connection drops and comes back, everyone gets [`Wake::All`].
#[derive(Clone)]
pub struct ListenHub {
    tx: tokio::sync::broadcast::Sender<Wake>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// A notification with this payload.
    One(String),
    /// Anything may have changed (reconnect, lagging subscriber): re-read.
    All,
}

impl ListenHub {
    pub async fn start(
        pool: &PgPool,
        channel: &str,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<Self, StartupError> {
        let (tx, _) = tokio::sync::broadcast::channel(4096);
        let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
        listener.listen(channel).await?;
        let sender = tx.clone();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    n = listener.try_recv() => n,
                };
                let wake = match next {
                    Ok(Some(n)) => Wake::One(n.payload().to_owned()),
                    Ok(None) => Wake::All,
                    Err(e) => {
                        tracing::warn!(error = %e, "listen connection error");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        Wake::All
                    }
                };
                let _ = sender.send(wake);
            }
        });
        Ok(Self { tx })
    }

    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Wake> {
        self.tx.subscribe()
    }

    /// A hub fed by `tx` instead of a database listener (tests).
    pub fn from_sender(tx: tokio::sync::broadcast::Sender<Wake>) -> Self {
        Self { tx }
    }
}

/// Per-key wake-ups on top of a [`ListenHub`]: one dispatcher task reads the hub and bumps a
/// version counter for the notified key only, so a notification wakes the subscribers of
/// that key and nobody else (a plain broadcast would wake every open stream of the process
/// for every message). A subscriber registers before it reads, and a bump between its read
/// and its wait is kept by the counter, so no wake-up is lost. Reconnects and a lagging
/// dispatcher bump every key.
#[derive(Clone)]
pub struct KeyedHub {
    keys: std::sync::Arc<std::sync::Mutex<KeyMap>>,
}

/// Per key: the version sender and how many watchers hold it.
type KeyMap = std::collections::HashMap<String, (tokio::sync::watch::Sender<u64>, usize)>;

impl KeyedHub {
    pub fn start(hub: &ListenHub, shutdown: tokio_util::sync::CancellationToken) -> Self {
        let me = Self { keys: Default::default() };
        let keys = me.keys.clone();
        let mut rx = hub.subscribe();
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let wake = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    w = rx.recv() => w,
                };
                let Ok(map) = keys.lock() else { break };
                match wake {
                    Ok(Wake::One(key)) => {
                        if let Some((tx, _)) = map.get(&key) {
                            tx.send_modify(|v| *v = v.wrapping_add(1));
                        }
                    }
                    Ok(Wake::All) | Err(RecvError::Lagged(_)) => {
                        for (tx, _) in map.values() {
                            tx.send_modify(|v| *v = v.wrapping_add(1));
                        }
                    }
                    Err(RecvError::Closed) => break,
                }
            }
            // The hub is gone: wake everyone once more; their waits then end as Done.
            if let Ok(mut map) = keys.lock() {
                map.clear();
            }
        });
        me
    }

    /// Registers interest in `key`; wake-ups from now on are kept until waited for.
    pub fn watch(&self, key: &str) -> KeyWatch {
        let rx = match self.keys.lock() {
            Ok(mut map) => {
                let entry = map.entry(key.to_owned()).or_insert_with(|| (tokio::sync::watch::channel(0).0, 0));
                entry.1 += 1;
                Some(entry.0.subscribe())
            }
            Err(_) => None,
        };
        KeyWatch { key: key.to_owned(), rx, hub: self.clone() }
    }

    /// Keys with at least one subscriber (for metrics and tests).
    pub fn watched_keys(&self) -> usize {
        self.keys.lock().map(|m| m.len()).unwrap_or(0)
    }
}

/// One subscriber's interest in a key of a [`KeyedHub`].
pub struct KeyWatch {
    key: String,
    rx: Option<tokio::sync::watch::Receiver<u64>>,
    hub: KeyedHub,
}

impl KeyWatch {
    /// Waits up to `idle` for a wake-up of this key.
    pub async fn wait(&mut self, idle: Duration, shutdown: &tokio_util::sync::CancellationToken) -> Waited {
        let Some(rx) = self.rx.as_mut() else { return Waited::Done };
        tokio::select! {
            _ = shutdown.cancelled() => Waited::Done,
            _ = tokio::time::sleep(idle) => Waited::Idle,
            changed = rx.changed() => if changed.is_ok() { Waited::Woken } else { Waited::Done },
        }
    }
}

impl Drop for KeyWatch {
    fn drop(&mut self) {
        if let Ok(mut map) = self.hub.keys.lock()
            && let Some(entry) = map.get_mut(&self.key)
        {
            entry.1 -= 1;
            if entry.1 == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// Escapes `%`, `_` and `\` so user text matches literally inside a LIKE pattern.
pub fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Filter clauses shared by the services' list queries. `column` names are compile-time
/// literals; every value is bound.
pub mod filters {
    use sqlx::{Postgres, QueryBuilder};

    use super::escape_like;

    /// `AND column = code`, or with `subordinates` every office under `code`
    /// (see [`crate::offices::subtree_prefix`]).
    pub fn office(q: &mut QueryBuilder<Postgres>, column: &'static str, code: &str, subordinates: bool) {
        if subordinates {
            let prefix = crate::offices::subtree_prefix(code).unwrap_or(code);
            q.push(" AND ").push(column).push(" LIKE ").push_bind(format!("{}%", escape_like(prefix)));
        } else {
            q.push(" AND ").push(column).push(" = ").push_bind(code.to_owned());
        }
    }

    /// `AND column ILIKE '%text%'`, the text matched literally (fuzzy search, 模糊查询).
    pub fn contains(q: &mut QueryBuilder<Postgres>, column: &'static str, text: &str) {
        q.push(" AND ").push(column).push(" ILIKE ").push_bind(format!("%{}%", escape_like(text)));
    }

    /// A taxpayer by 纳税人识别号 (exact, case-insensitive) or by name (fuzzy).
    pub fn taxpayer(q: &mut QueryBuilder<Postgres>, id_column: &'static str, name_column: &'static str, query: &str) {
        q.push(" AND (")
            .push(id_column)
            .push(" = ")
            .push_bind(query.to_uppercase())
            .push(" OR ")
            .push(name_column)
            .push(" ILIKE ")
            .push_bind(format!("%{}%", escape_like(query)))
            .push(")");
    }
}

/// The next human-readable number for `prefix` today (Asia/Shanghai): prefix + yyyymmdd +
/// a 6-digit daily sequence, e.g. `YY20261124000001`. Runs in the caller's transaction, on
/// the service's `number_counters (prefix, day, last)` table, so a rolled-back insert gives
/// its number back.
pub async fn next_number(conn: &mut sqlx::PgConnection, prefix: &str) -> Result<String, sqlx::Error> {
    let today = crate::time::shanghai_today();
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO number_counters (prefix, day, last) VALUES ($1, $2, 1)
         ON CONFLICT (prefix, day) DO UPDATE SET last = number_counters.last + 1 RETURNING last",
    )
    .bind(prefix)
    .bind(today)
    .fetch_one(conn)
    .await?;
    Ok(format!("{prefix}{}{seq:06}", today.format("%Y%m%d")))
}

#[cfg(test)]
mod tests {
    use super::{Waited, Wake, escape_like, wait_for};
    use std::time::Duration;

    #[tokio::test]
    async fn unrelated_wakes_do_not_postpone_the_heartbeat() {
        let (tx, mut rx) = tokio::sync::broadcast::channel(64);
        let shutdown = tokio_util::sync::CancellationToken::new();
        let noise = tokio::spawn(async move {
            for _ in 0..50 {
                let _ = tx.send(Wake::One("someone-else".into()));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let _ = tx.send(Wake::One("me".into()));
        });
        // The noise lasts over 500 ms; a clock restarted by each unrelated wake-up would
        // only end with the relevant one (Woken), never Idle.
        assert_eq!(wait_for(&mut rx, |p| p == "me", Duration::from_millis(100), &shutdown).await, Waited::Idle);
        assert_eq!(wait_for(&mut rx, |p| p == "me", Duration::from_secs(5), &shutdown).await, Waited::Woken);
        noise.await.expect("noise");
        shutdown.cancel();
        assert_eq!(wait_for(&mut rx, |_| true, Duration::from_secs(5), &shutdown).await, Waited::Done);
    }

    #[tokio::test]
    async fn keyed_wakes_reach_only_their_key_and_are_not_lost() {
        use super::KeyedHub;
        let (tx, _) = tokio::sync::broadcast::channel(64);
        let hub = super::ListenHub::from_sender(tx.clone());
        let shutdown = tokio_util::sync::CancellationToken::new();
        let keyed = KeyedHub::start(&hub, shutdown.clone());
        let mut a = keyed.watch("a");
        let mut b = keyed.watch("b");
        let _ = tx.send(Wake::One("a".into()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The wake-up arrived before anyone waited: it is kept.
        assert_eq!(a.wait(Duration::from_secs(5), &shutdown).await, Waited::Woken);
        assert_eq!(b.wait(Duration::from_millis(100), &shutdown).await, Waited::Idle);
        let _ = tx.send(Wake::All);
        assert_eq!(b.wait(Duration::from_secs(5), &shutdown).await, Waited::Woken);
        assert_eq!(keyed.watched_keys(), 2);
        drop(a);
        assert_eq!(keyed.watched_keys(), 1);
        shutdown.cancel();
    }

    #[test]
    fn like_wildcards_are_literal() {
        assert_eq!(escape_like("50%_a\\b"), "50\\%\\_a\\\\b");
    }
}

/// What ended a [`wait_for`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// A relevant notification (or a re-read signal) arrived: re-read.
    Woken,
    /// Nothing relevant before the deadline: time for a heartbeat.
    Idle,
    /// Shutdown, or the hub is gone: end the stream.
    Done,
}

/// Waits up to `idle` for a wake-up whose payload `relevant` accepts (re-read signals and
/// lagging always count). Unrelated wake-ups do not restart the clock, so a busy channel
/// never starves a subscriber's heartbeat.
pub async fn wait_for(
    wakes: &mut tokio::sync::broadcast::Receiver<Wake>,
    relevant: impl Fn(&str) -> bool,
    idle: Duration,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Waited {
    use tokio::sync::broadcast::error::RecvError;
    let deadline = tokio::time::sleep(idle);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Waited::Done,
            _ = &mut deadline => return Waited::Idle,
            w = wakes.recv() => match w {
                Ok(Wake::One(payload)) if !relevant(&payload) => continue,
                Ok(_) | Err(RecvError::Lagged(_)) => return Waited::Woken,
                Err(RecvError::Closed) => return Waited::Done,
            },
        }
    }
}
