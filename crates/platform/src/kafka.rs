//! Kafka plumbing over rdkafka: topic creation, the outbox relay (idempotent producer) and
//! an at-least-once consumer whose handlers run in a database transaction that also records
//! the event id, so redelivered events are skipped and offsets move only after commit.
//!
//! Nothing here depends on the broker being a particular implementation: it speaks the
//! Kafka protocol to Apache Kafka in production and to tansu in local runs and tests.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::StartupError;
use crate::telemetry;

pub const HEADER_EVENT_ID: &str = "event-id";
pub const HEADER_EVENT_TYPE: &str = "event-type";
pub const HEADER_TRACEPARENT: &str = "traceparent";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct KafkaConfig {
    pub bootstrap_servers: String,
    /// Partitions and replication used when this service creates its topics.
    pub topic_partitions: i32,
    pub topic_replication: i32,
    /// How long the producer keeps retrying one message before the relay sees an error.
    pub message_timeout_ms: u64,
    /// Relay poll interval when no notification arrives.
    pub relay_poll_ms: u64,
    /// How often clients refresh topic metadata (how soon a re-created topic is seen).
    pub metadata_refresh_ms: u64,
    /// Extra librdkafka properties (security.protocol, sasl.*, …).
    pub extra: HashMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: "127.0.0.1:9092".into(),
            topic_partitions: 3,
            topic_replication: 1,
            message_timeout_ms: 30_000,
            relay_poll_ms: 500,
            metadata_refresh_ms: 30_000,
            extra: HashMap::new(),
        }
    }
}

impl KafkaConfig {
    fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers);
        c.set("topic.metadata.refresh.interval.ms", self.metadata_refresh_ms.to_string());
        for (k, v) in &self.extra {
            c.set(k, v);
        }
        c
    }
}

/// Creates `topics` when missing. Brokers that do not auto-create topics (tansu, most
/// production clusters) need this before the first send.
pub async fn ensure_topics(cfg: &KafkaConfig, topics: &[&str]) -> Result<(), StartupError> {
    let admin: AdminClient<DefaultClientContext> = cfg.client().create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, cfg.topic_partitions, TopicReplication::Fixed(cfg.topic_replication)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin.create_topics(&new, &opts).await?;
    for r in results {
        match r {
            Ok(topic) => tracing::info!(topic, "created topic"),
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(StartupError::Other(format!("create topic {topic}: {code}")));
            }
        }
    }
    Ok(())
}

/// An idempotent producer (acks=all): retries never duplicate or reorder within a partition.
pub fn producer(cfg: &KafkaConfig) -> Result<FutureProducer, StartupError> {
    Ok(cfg
        .client()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "5")
        .set("message.timeout.ms", cfg.message_timeout_ms.to_string())
        .set("linger.ms", "5")
        .create()?)
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    id: i64,
    event_id: Uuid,
    topic: String,
    key: String,
    event_type: String,
    payload: Vec<u8>,
    traceparent: Option<String>,
}

/// Publishes outbox rows in id order. Only one relay per database publishes at a time
/// (a transaction-scoped advisory lock), so per-key order survives several replicas.
pub struct Relay {
    cfg: KafkaConfig,
    pool: PgPool,
    producer: FutureProducer,
    poll: Duration,
    batch: i64,
}

/// Advisory lock key shared by every relay of a database.
const RELAY_LOCK: i64 = 0x007a_6865_6e67_6e61; // "zhengna"

impl Relay {
    pub fn new(pool: PgPool, cfg: &KafkaConfig) -> Result<Self, StartupError> {
        Ok(Self {
            cfg: cfg.clone(),
            pool,
            producer: producer(cfg)?,
            poll: Duration::from_millis(cfg.relay_poll_ms),
            batch: 100,
        })
    }

    /// Runs until `shutdown`; publishing errors are retried with backoff, never skipped.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&self.pool).await {
            Ok(mut l) => match l.listen("zhengna_outbox").await {
                Ok(()) => Some(l),
                Err(_) => None,
            },
            Err(e) => {
                tracing::warn!(error = %e, "outbox relay runs without LISTEN, polling only");
                None
            }
        };
        let mut backoff = Duration::from_millis(200);
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            match self.publish_batch().await {
                Ok(n) if n > 0 => {
                    backoff = Duration::from_millis(200);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    metrics::counter!("outbox_publish_errors_total").increment(1);
                    tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "outbox publish failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    self.recreate_topics().await;
                    // A fresh producer: an idempotent producer whose broker lost its state (or
                    // that hit a fatal error) never recovers, and a new one costs little.
                    // Anything the old one did write is deduplicated by consumers.
                    match producer(&self.cfg) {
                        Ok(p) => self.producer = p,
                        Err(e) => tracing::warn!(error = %e, "could not recreate producer"),
                    }
                    continue;
                }
            }
            let wait = async {
                match listener.as_mut() {
                    Some(l) => {
                        let _ = tokio::time::timeout(self.poll, l.recv()).await;
                    }
                    None => tokio::time::sleep(self.poll).await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = wait => {}
            }
        }
        tracing::info!("outbox relay stopped");
    }

    /// After a failure, makes sure the pending rows' topics exist: a broker that lost its
    /// topics (a restarted in-memory broker, a cluster rebuilt from scratch) would otherwise
    /// hold every send until it times out.
    async fn recreate_topics(&self) {
        let topics: Vec<String> =
            match sqlx::query_scalar("SELECT DISTINCT topic FROM outbox WHERE published_at IS NULL")
                .fetch_all(&self.pool)
                .await
            {
                Ok(t) => t,
                Err(_) => return,
            };
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        if let Err(e) = ensure_topics(&self.cfg, &refs).await {
            tracing::debug!(error = %e, "could not ensure topics");
        }
    }

    /// Publishes one batch; returns how many rows were marked sent.
    pub async fn publish_batch(&self) -> Result<usize, String> {
        let mut tx = self.pool.begin().await.map_err(|e| e.to_string())?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(RELAY_LOCK)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
        if !locked {
            return Ok(0);
        }
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "SELECT id, event_id, topic, key, event_type, payload, traceparent
             FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(self.batch)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
        if rows.is_empty() {
            return Ok(0);
        }
        tracing::debug!(rows = rows.len(), first = rows[0].id, "publishing outbox batch");
        // Enqueue the whole batch in order, then await in order: the idempotent producer keeps
        // partition order, and only the successful prefix is marked so nothing is reordered.
        let mut pending = Vec::with_capacity(rows.len());
        for row in &rows {
            let event_id = row.event_id.to_string();
            let mut headers = OwnedHeaders::new()
                .insert(Header { key: HEADER_EVENT_ID, value: Some(event_id.as_bytes()) })
                .insert(Header { key: HEADER_EVENT_TYPE, value: Some(row.event_type.as_bytes()) });
            if let Some(tp) = &row.traceparent {
                headers = headers.insert(Header { key: HEADER_TRACEPARENT, value: Some(tp.as_bytes()) });
            }
            let record = FutureRecord::to(&row.topic).key(&row.key).payload(&row.payload).headers(headers);
            pending.push(self.producer.send(record, Duration::from_secs(0)));
        }
        let mut sent = Vec::new();
        let mut failure = None;
        for (row, fut) in rows.iter().zip(pending) {
            if failure.is_some() {
                // Let later sends settle; they will be retried after the failed one.
                let _ = fut.await;
                continue;
            }
            match fut.await {
                Ok(_) => sent.push(row.id),
                Err((e, _)) => failure = Some((row.id, e.to_string())),
            }
        }
        if !sent.is_empty() {
            sqlx::query("UPDATE outbox SET published_at = now(), attempts = attempts + 1 WHERE id = ANY($1)")
                .bind(&sent)
                .execute(&mut *tx)
                .await
                .map_err(|e| e.to_string())?;
        }
        if let Some((id, err)) = &failure {
            sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1")
                .bind(id)
                .bind(err)
                .execute(&mut *tx)
                .await
                .map_err(|e| e.to_string())?;
        }
        tx.commit().await.map_err(|e| e.to_string())?;
        tracing::debug!(sent = sent.len(), failed = failure.is_some(), "outbox batch done");
        metrics::counter!("outbox_published_total").increment(sent.len() as u64);
        match failure {
            Some((_, err)) => Err(err),
            None => Ok(sent.len()),
        }
    }
}

/// A consumed event as handlers see it.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub event_id: Uuid,
    pub event_type: String,
    pub key: String,
    pub topic: String,
    pub payload: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Try the same event again after a pause (database down, dependency unavailable).
    #[error("retryable: {0}")]
    Retry(String),
    /// The event can never be processed (undecodable, unknown type): dead-lettered.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl From<sqlx::Error> for HandlerError {
    fn from(e: sqlx::Error) -> Self {
        HandlerError::Retry(e.to_string())
    }
}

/// An idempotent event handler; its effects go into `tx`, which also records the event id.
pub trait Handler: Send + Sync + 'static {
    /// Whether this consumer handles events of `event_type` at all. Others are skipped
    /// without a database transaction (their offsets still advance).
    fn wants(&self, _event_type: &str) -> bool {
        true
    }

    fn handle<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Postgres>,
        event: &'a Envelope,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send + 'a;
}

pub struct ConsumerOptions {
    /// Consumer group id, also the dedupe namespace in `processed_events`.
    pub group: String,
    pub topics: Vec<String>,
}

/// Runs a consumer until `shutdown`: at-least-once delivery, exactly-once effects.
pub async fn run_consumer<H: Handler>(
    cfg: KafkaConfig,
    opts: ConsumerOptions,
    pool: PgPool,
    handler: H,
    shutdown: CancellationToken,
) -> Result<(), StartupError> {
    let consumer: StreamConsumer = cfg
        .client()
        .set("group.id", &opts.group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .create()?;
    let topics: Vec<&str> = opts.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    tracing::info!(group = %opts.group, ?topics, "consumer started");
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => break,
            m = consumer.recv() => m,
        };
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "consumer receive error");
                // A broker that lost its topics (rebuilt cluster, restarted in-memory broker)
                // leaves the subscription empty until someone re-creates them.
                if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition) {
                    let _ = ensure_topics(&cfg, &topics).await;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if !process(&pool, &opts.group, &handler, &msg, &shutdown).await {
            break;
        }
        if let Err(e) = consumer.store_offset_from_message(&msg) {
            tracing::warn!(error = %e, "store offset failed; event may be redelivered and skipped");
        }
    }
    // Commit what has been stored so a restart resumes right after the last handled event.
    let _ = consumer.commit_consumer_state(CommitMode::Sync);
    tracing::info!(group = %opts.group, "consumer stopped");
    Ok(())
}

fn header<'a>(msg: &'a BorrowedMessage<'a>, name: &str) -> Option<&'a str> {
    msg.headers()?.iter().find(|h| h.key == name).and_then(|h| h.value).and_then(|v| std::str::from_utf8(v).ok())
}

/// Handles one message until it is done (true) or shutdown interrupts a retry (false).
async fn process<H: Handler>(
    pool: &PgPool,
    group: &str,
    handler: &H,
    msg: &BorrowedMessage<'_>,
    shutdown: &CancellationToken,
) -> bool {
    let event_id = header(msg, HEADER_EVENT_ID).and_then(|s| Uuid::parse_str(s).ok());
    let event_type = header(msg, HEADER_EVENT_TYPE).unwrap_or_default().to_owned();
    let span = tracing::info_span!("kafka.consume", otel.kind = "consumer", topic = msg.topic(), %event_type, group);
    telemetry::set_parent_from_traceparent(&span, header(msg, HEADER_TRACEPARENT));
    let Some(event_id) = event_id else {
        return dead_letter_until_recorded(
            pool,
            group,
            None,
            msg,
            &event_type,
            "missing or invalid event-id header",
            shutdown,
        )
        .await;
    };
    if !handler.wants(&event_type) {
        return true;
    }
    let envelope = Envelope {
        event_id,
        event_type: event_type.clone(),
        key: msg.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default(),
        topic: msg.topic().to_owned(),
        payload: msg.payload().map(<[u8]>::to_vec).unwrap_or_default(),
    };
    let mut backoff = Duration::from_millis(200);
    loop {
        let outcome = handle_once(pool, group, handler, &envelope).instrument(span.clone()).await;
        match outcome {
            Ok(()) => return true,
            Err(HandlerError::Permanent(err)) => {
                tracing::error!(parent: &span, %event_id, error = %err, "event dead-lettered");
                return dead_letter_until_recorded(pool, group, Some(event_id), msg, &event_type, &err, shutdown).await;
            }
            Err(HandlerError::Retry(err)) => {
                metrics::counter!("consumer_retries_total", "group" => group.to_owned()).increment(1);
                tracing::warn!(parent: &span, %event_id, error = %err, "event handling failed, retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return false,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

async fn handle_once<H: Handler>(pool: &PgPool, group: &str, handler: &H, env: &Envelope) -> Result<(), HandlerError> {
    let mut tx = pool.begin().await?;
    let fresh = sqlx::query("INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(group)
        .bind(env.event_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 1;
    if !fresh {
        metrics::counter!("consumer_duplicates_total", "group" => group.to_owned()).increment(1);
        tracing::debug!(event_id = %env.event_id, "duplicate event skipped");
        return Ok(());
    }
    handler.handle(&mut tx, env).await?;
    tx.commit().await?;
    metrics::counter!("consumer_handled_total", "group" => group.to_owned()).increment(1);
    Ok(())
}

/// Records a dead letter, retrying until it is stored (true) or shutdown interrupts (false):
/// the offset must not move past an event that is neither handled nor recorded.
async fn dead_letter_until_recorded(
    pool: &PgPool,
    group: &str,
    event_id: Option<Uuid>,
    msg: &BorrowedMessage<'_>,
    event_type: &str,
    error: &str,
    shutdown: &CancellationToken,
) -> bool {
    let mut backoff = Duration::from_millis(200);
    loop {
        if dead_letter(pool, group, event_id, msg, event_type, error).await {
            return true;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn dead_letter(
    pool: &PgPool,
    group: &str,
    event_id: Option<Uuid>,
    msg: &BorrowedMessage<'_>,
    event_type: &str,
    error: &str,
) -> bool {
    let res = async {
        let mut tx = pool.begin().await?;
        if let Some(id) = event_id {
            sqlx::query("INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(group)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO dead_letter_events (consumer, event_id, topic, partition, kafka_offset, event_type, payload, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(group)
        .bind(event_id)
        .bind(msg.topic())
        .bind(msg.partition())
        .bind(msg.offset())
        .bind(event_type)
        .bind(msg.payload())
        .bind(error)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }
    .await;
    match res {
        Ok(()) => {
            metrics::counter!("consumer_dead_letters_total", "group" => group.to_owned()).increment(1);
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "could not record dead letter; retrying");
            false
        }
    }
}
