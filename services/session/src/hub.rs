//! Cross-replica fan-out of "conversation X has a new message": the notification is sent in
//! the storing transaction, so it arrives exactly when the message becomes visible, on every
//! replica. Notifications are only wake-ups; subscribers read messages by seq themselves.
//! Each process routes a notification to the streams of that conversation only (KeyedHub),
//! so one message costs one wake-up per subscriber of its conversation, not per open stream.

pub use zhengna_platform::db::{KeyWatch, KeyedHub as Hub, ListenHub};

pub const CHANNEL: &str = "zhengna_session_messages";
