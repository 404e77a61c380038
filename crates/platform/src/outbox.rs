//! The transactional outbox: a state change and its event commit together; the relay
//! (see [`crate::kafka::Relay`]) publishes rows in order and marks them sent.
//!
//! Every service that publishes has this table (its first migration creates it):
//! `outbox(id bigserial, event_id uuid unique, topic, key, event_type, payload bytea,
//! traceparent, created_at, published_at, attempts, last_error)`.

use sqlx::PgConnection;
use uuid::Uuid;

/// An event to publish: `key` is the aggregate id (conversation, appointment, taxpayer).
pub struct OutboxEvent<'a> {
    pub topic: &'a str,
    pub key: &'a str,
    /// Fully qualified payload variant, e.g. `zhengna.appointment.v1.Booked`.
    pub event_type: &'a str,
    pub payload: Vec<u8>,
}

/// Inserts an event inside the caller's transaction and returns its event id.
pub async fn enqueue(conn: &mut PgConnection, event: OutboxEvent<'_>) -> Result<Uuid, sqlx::Error> {
    let event_id = Uuid::now_v7();
    // One round trip: the row, and a wake-up for the relay now instead of at its next poll
    // (delivered on commit).
    sqlx::query(
        "WITH queued AS (
             INSERT INTO outbox (event_id, topic, key, event_type, payload, traceparent)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING 1)
         SELECT pg_notify('zhengna_outbox', '') FROM queued",
    )
    .bind(event_id)
    .bind(event.topic)
    .bind(event.key)
    .bind(event.event_type)
    .bind(event.payload)
    .bind(crate::telemetry::current_traceparent())
    .execute(&mut *conn)
    .await?;
    Ok(event_id)
}

/// SQL for the outbox and processed-event tables, for a service's first migration.
pub const SCHEMA_SQL: &str = include_str!("outbox_schema.sql");
