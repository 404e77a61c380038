//! Cross-replica fan-out of "conversation X has a new message": the notification is sent in
//! the storing transaction, so it arrives exactly when the message becomes visible, on every
//! replica. Notifications are only wake-ups; subscribers read messages by seq themselves.

pub use zhengna_platform::db::{ListenHub as Hub, Wake};

pub const CHANNEL: &str = "zhengna_session_messages";
