//! Service hours and capacity per unit: a weekly pattern of half-hour slots with a capacity
//! each, date exceptions (a closed day is an exception with no slots), how far ahead one may
//! book and how late. Units without a saved configuration use [`SlotConfig::default`].

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};
use serde::{Deserialize, Serialize};
use zhengna_platform::time;

pub const SLOT_MINUTES: i64 = 30;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotCapacity {
    /// Local (Asia/Shanghai) start, on :00 or :30.
    pub start: NaiveTime,
    pub capacity: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotConfig {
    /// Index 0 = Monday … 6 = Sunday.
    pub weekly: [Vec<SlotCapacity>; 7],
    /// Dates that differ from the weekly pattern (holidays, make-up working days).
    pub exceptions: Vec<(NaiveDate, Vec<SlotCapacity>)>,
    pub booking_horizon_days: i32,
    pub min_lead_minutes: i32,
}

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default()
}

impl Default for SlotConfig {
    /// Monday to Friday, 09:00–12:00 and 13:30–17:00, 5 per half hour; 30 days ahead, at least
    /// one hour before.
    fn default() -> Self {
        let mut day = Vec::new();
        for (h, m) in [
            (9, 0),
            (9, 30),
            (10, 0),
            (10, 30),
            (11, 0),
            (11, 30),
            (13, 30),
            (14, 0),
            (14, 30),
            (15, 0),
            (15, 30),
            (16, 0),
            (16, 30),
        ] {
            day.push(SlotCapacity { start: hm(h, m), capacity: 5 });
        }
        Self {
            weekly: [day.clone(), day.clone(), day.clone(), day.clone(), day, Vec::new(), Vec::new()],
            exceptions: Vec::new(),
            booking_horizon_days: 30,
            min_lead_minutes: 60,
        }
    }
}

/// Why a slot cannot be booked, with the field-level Chinese text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotError {
    NotOnGrid,
    TooSoon,
    TooFar,
    Closed,
}

impl SlotError {
    pub fn describe(&self) -> (&'static str, &'static str) {
        match self {
            SlotError::NotOnGrid => ("must start on the hour or half hour", "预约服务时间须为整点或半点。"),
            SlotError::TooSoon => ("too soon or in the past", "该时段已过或距现在太近，请选择更晚的时间。"),
            SlotError::TooFar => ("beyond the booking horizon", "该时段超出可预约的日期范围，请选择更近的日期。"),
            SlotError::Closed => {
                ("outside the unit's service hours", "该时段不在预约服务单位的服务时间内，请重新选择。")
            }
        }
    }
}

impl SlotConfig {
    fn slots_on(&self, date: NaiveDate) -> &[SlotCapacity] {
        match self.exceptions.iter().find(|(d, _)| *d == date) {
            Some((_, slots)) => slots,
            None => &self.weekly[date.weekday().num_days_from_monday() as usize],
        }
    }

    /// The capacity of the slot starting at `start`, if it can be booked at `now`.
    pub fn capacity(&self, start: DateTime<Utc>, now: DateTime<Utc>) -> Result<i32, SlotError> {
        let local = time::to_shanghai(start);
        if local.second() != 0 || start.timestamp_subsec_nanos() != 0 || !local.minute().is_multiple_of(30) {
            return Err(SlotError::NotOnGrid);
        }
        if start < now + Duration::minutes(i64::from(self.min_lead_minutes)) {
            return Err(SlotError::TooSoon);
        }
        if start > now + Duration::days(i64::from(self.booking_horizon_days)) {
            return Err(SlotError::TooFar);
        }
        self.slots_on(local.date_naive())
            .iter()
            .find(|s| s.start == local.time())
            .filter(|s| s.capacity > 0)
            .map(|s| s.capacity)
            .ok_or(SlotError::Closed)
    }

    /// Every bookable slot start between `from` and `to` (inclusive dates), with capacity.
    pub fn slots_between(&self, from: NaiveDate, to: NaiveDate, now: DateTime<Utc>) -> Vec<(DateTime<Utc>, i32)> {
        let mut out = Vec::new();
        let mut date = from;
        while date <= to {
            for s in self.slots_on(date) {
                let local = time::shanghai().from_local_datetime(&date.and_time(s.start)).single();
                if let Some(start) = local.map(|l| l.with_timezone(&Utc))
                    && let Ok(cap) = self.capacity(start, now)
                {
                    out.push((start, cap));
                }
            }
            match date.succ_opt() {
                Some(d) => date = d,
                None => break,
            }
        }
        out
    }

    /// Checks the configuration an admin submits; returns (field, English, Chinese) problems.
    pub fn problems(&self) -> Vec<(String, &'static str, &'static str)> {
        let mut v = Vec::new();
        let check = |slots: &[SlotCapacity], field: String, v: &mut Vec<(String, &'static str, &'static str)>| {
            for (i, s) in slots.iter().enumerate() {
                if !s.start.minute().is_multiple_of(30) || s.start.second() != 0 {
                    v.push((format!("{field}[{i}].start"), "must be on :00 or :30", "时段须从整点或半点开始。"));
                }
                if !(0..=1000).contains(&s.capacity) {
                    v.push((
                        format!("{field}[{i}].capacity"),
                        "must be 0 to 1000",
                        "每个时段的可预约数须在0到1000之间。",
                    ));
                }
            }
            let mut starts: Vec<_> = slots.iter().map(|s| s.start).collect();
            starts.sort();
            if starts.windows(2).any(|w| w[0] == w[1]) {
                v.push((field, "duplicate slot start", "同一时段不能重复设置。"));
            }
        };
        for (d, slots) in self.weekly.iter().enumerate() {
            check(slots, format!("weekly[{d}].slots"), &mut v);
        }
        for (i, (_, slots)) in self.exceptions.iter().enumerate() {
            check(slots, format!("exceptions[{i}].slots"), &mut v);
        }
        if !(1..=90).contains(&self.booking_horizon_days) {
            v.push(("booking_horizon_days".into(), "must be 1 to 90", "可预约天数须在1到90天之间。"));
        }
        if !(0..=1440).contains(&self.min_lead_minutes) {
            v.push(("min_lead_minutes".into(), "must be 0 to 1440", "最短提前预约时间须在0到1440分钟之间。"));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        time::shanghai().with_ymd_and_hms(y, mo, d, h, mi, 0).single().expect("valid").with_timezone(&Utc)
    }

    #[test]
    fn default_hours() {
        let cfg = SlotConfig::default();
        let now = sh(2026, 11, 24, 8, 0); // a Tuesday
        assert_eq!(cfg.capacity(sh(2026, 11, 24, 9, 30), now), Ok(5));
        assert_eq!(cfg.capacity(sh(2026, 11, 24, 12, 0), now), Err(SlotError::Closed), "lunch");
        assert_eq!(cfg.capacity(sh(2026, 11, 28, 10, 0), now), Err(SlotError::Closed), "saturday");
        assert_eq!(cfg.capacity(sh(2026, 11, 24, 8, 30), now), Err(SlotError::TooSoon), "inside the lead time");
        assert_eq!(cfg.capacity(sh(2026, 11, 24, 9, 15), now), Err(SlotError::NotOnGrid));
        assert_eq!(cfg.capacity(sh(2027, 1, 5, 10, 0), now), Err(SlotError::TooFar));
    }

    #[test]
    fn exceptions_override_the_week() {
        let mut cfg = SlotConfig::default();
        let holiday = NaiveDate::from_ymd_opt(2026, 11, 25).expect("date");
        cfg.exceptions.push((holiday, Vec::new()));
        let now = sh(2026, 11, 24, 8, 0);
        assert_eq!(cfg.capacity(sh(2026, 11, 25, 10, 0), now), Err(SlotError::Closed));
        let slots = cfg.slots_between(holiday, holiday, now);
        assert!(slots.is_empty());
        let tuesday = NaiveDate::from_ymd_opt(2026, 11, 24).expect("date");
        assert_eq!(cfg.slots_between(tuesday, tuesday, now).len(), 13);
    }

    #[test]
    fn bad_configs_are_reported_by_field() {
        let mut cfg = SlotConfig::default();
        cfg.weekly[0].push(SlotCapacity { start: hm(9, 15), capacity: -1 });
        cfg.booking_horizon_days = 0;
        let fields: Vec<_> = cfg.problems().into_iter().map(|p| p.0).collect();
        assert_eq!(fields, ["weekly[0].slots[13].start", "weekly[0].slots[13].capacity", "booking_horizon_days"]);
    }
}
