//! Business time: slots, business hours and day boundaries are in Asia/Shanghai (UTC+8, no
//! daylight saving); storage is UTC.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};

/// The Asia/Shanghai offset.
pub fn shanghai() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is within the ±24h FixedOffset range")
}

/// Today's date in Shanghai.
pub fn shanghai_today() -> NaiveDate {
    Utc::now().with_timezone(&shanghai()).date_naive()
}

/// A UTC instant as Shanghai local time.
pub fn to_shanghai(t: DateTime<Utc>) -> DateTime<FixedOffset> {
    t.with_timezone(&shanghai())
}
