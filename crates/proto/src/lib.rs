//! Generated protobuf messages and gRPC clients/servers for zhengna's v1 APIs, plus the
//! encoded descriptor set (for reflection and for clients that load types at run time).
//!
//! Regenerate with `cargo xtask codegen`; `xtask`'s tests fail when this is stale.

#[allow(clippy::all, clippy::pedantic, missing_docs, rust_2018_idioms, unused_qualifications)]
#[rustfmt::skip]
#[path = "gen/mod.rs"]
mod generated;

pub use generated::zhengna::*;

/// `FileDescriptorSet` of every zhengna proto and its imports.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("gen/descriptor.bin");

/// Kafka topic of each domain's events (`zhengna.<domain>.v1.events`).
pub mod topics {
    pub const ANSWER: &str = "zhengna.answer.v1.events";
    pub const QUEUE: &str = "zhengna.queue.v1.events";
    pub const SESSION: &str = "zhengna.session.v1.events";
    pub const APPOINTMENT: &str = "zhengna.appointment.v1.events";
    pub const MESSAGING: &str = "zhengna.messaging.v1.events";
    pub const ALL: [&str; 5] = [ANSWER, QUEUE, SESSION, APPOINTMENT, MESSAGING];
}
