//! Infrastructure shared by every zhengna service: configuration, telemetry, gRPC server
//! scaffolding, database pools and migrations, the transactional outbox and Kafka plumbing,
//! internal identity and error mapping. It holds no domain types.

pub mod attachments;
pub mod config;
pub mod error;
pub mod grpc;
pub mod identity;
pub mod main_support;
pub mod offices;
pub mod paging;
pub mod server;
pub mod telemetry;
pub mod time;

#[cfg(feature = "db")]
pub mod db;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "db")]
pub mod outbox;

pub use error::{ApiError, FieldViolation};
pub use identity::{Agent, AgentRole, Caller, Taxpayer};

/// Errors raised while a service starts; they end the process with a clear message.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[cfg(feature = "db")]
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[cfg(feature = "db")]
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[cfg(feature = "kafka")]
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("telemetry: {0}")]
    Telemetry(String),
    #[error("{0}")]
    Other(String),
}
