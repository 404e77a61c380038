//! Business hours of human service: an office's weekly windows with dated exceptions
//! (holidays, 调休 working days), evaluated in China Standard Time (UTC+8, no DST).

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveTime, TimeZone, Timelike, Utc, Weekday};
use zhengna_platform::FieldViolation;
use zhengna_proto::common::v1 as common;
use zhengna_proto::queue::v1 as pb;

pub fn cst() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero offset"))
}

fn minutes(t: Option<&common::TimeOfDay>) -> i32 {
    t.map(|t| t.hours * 60 + t.minutes).unwrap_or(0)
}

fn weekday_pb(w: Weekday) -> common::Weekday {
    match w {
        Weekday::Mon => common::Weekday::Monday,
        Weekday::Tue => common::Weekday::Tuesday,
        Weekday::Wed => common::Weekday::Wednesday,
        Weekday::Thu => common::Weekday::Thursday,
        Weekday::Fri => common::Weekday::Friday,
        Weekday::Sat => common::Weekday::Saturday,
        Weekday::Sun => common::Weekday::Sunday,
    }
}

/// The windows that apply on `date` (an exception wins over the weekly hours).
pub fn windows_on(s: &pb::BusinessHoursSchedule, date: NaiveDate) -> &[common::TimeWindow] {
    if let Some(ex) = s.exceptions.iter().find(|e| {
        e.date
            .as_ref()
            .is_some_and(|d| d.year == date.year() && d.month as u32 == date.month() && d.day as u32 == date.day())
    }) {
        return &ex.windows;
    }
    let wd = weekday_pb(date.weekday()) as i32;
    s.weekly.iter().find(|w| w.weekday == wd).map(|w| w.windows.as_slice()).unwrap_or(&[])
}

/// Whether `now` falls in a window, and the next opening instant when it does not.
pub fn evaluate(s: &pb::BusinessHoursSchedule, now: DateTime<Utc>) -> (bool, Option<DateTime<Utc>>) {
    let local = now.with_timezone(&cst());
    let today = local.date_naive();
    let minute_now = (local.time().num_seconds_from_midnight() / 60) as i32;
    let open = windows_on(s, today)
        .iter()
        .any(|w| minutes(w.start.as_ref()) <= minute_now && minute_now < minutes(w.end.as_ref()));
    if open {
        return (true, None);
    }
    for day in 0..=31 {
        let date = today + Duration::days(day);
        let mut starts: Vec<i32> = windows_on(s, date).iter().map(|w| minutes(w.start.as_ref())).collect();
        starts.sort_unstable();
        for start in starts {
            if day == 0 && start <= minute_now {
                continue;
            }
            let t = NaiveTime::from_hms_opt((start / 60) as u32, (start % 60) as u32, 0);
            if let Some(at) = t.and_then(|t| cst().from_local_datetime(&date.and_time(t)).single()) {
                return (false, Some(at.with_timezone(&Utc)));
            }
        }
    }
    (false, None)
}

fn hm(m: i32) -> String {
    format!("{}:{:02}", m / 60, m % 60)
}

/// "人工服务时间：周一至周五 9:00-12:00、13:30-17:00" style text from the weekly hours.
pub fn describe(s: &pb::BusinessHoursSchedule) -> String {
    if !s.closed_notice.trim().is_empty() {
        return s.closed_notice.trim().to_owned();
    }
    const NAMES: [&str; 8] = ["", "周一", "周二", "周三", "周四", "周五", "周六", "周日"];
    let mut parts: Vec<String> = Vec::new();
    let mut days: Vec<&pb::WeekdayHours> = s.weekly.iter().filter(|w| !w.windows.is_empty()).collect();
    days.sort_by_key(|w| w.weekday);
    for w in days {
        let windows: Vec<String> = w
            .windows
            .iter()
            .map(|x| format!("{}-{}", hm(minutes(x.start.as_ref())), hm(minutes(x.end.as_ref()))))
            .collect();
        let name = NAMES.get(w.weekday as usize).copied().unwrap_or("");
        parts.push(format!("{name} {}", windows.join("、")));
    }
    if parts.is_empty() {
        "当前暂无人工服务，您可以留言或预约互动。".into()
    } else {
        format!("人工服务时间：{}。当前为非工作时间，您可以留言或预约互动。", parts.join("；"))
    }
}

/// Checks a schedule's windows: valid times, start before end, ascending, no overlap.
pub fn validate(s: &pb::BusinessHoursSchedule) -> Vec<FieldViolation> {
    let mut v = Vec::new();
    let check = |field: String, windows: &[common::TimeWindow], v: &mut Vec<FieldViolation>| {
        let mut last_end = -1;
        for (i, w) in windows.iter().enumerate() {
            let ok_time = |t: Option<&common::TimeOfDay>, end: bool| {
                t.is_some_and(|t| (0..=23).contains(&t.hours) && (0..=59).contains(&t.minutes))
                    || (end && t.is_some_and(|t| t.hours == 24 && t.minutes == 0))
            };
            let (a, b) = (minutes(w.start.as_ref()), minutes(w.end.as_ref()));
            if !ok_time(w.start.as_ref(), false) || !ok_time(w.end.as_ref(), true) {
                v.push(FieldViolation::new(format!("{field}.windows[{i}]"), "invalid time of day", "时间格式有误。"));
            } else if a >= b {
                v.push(FieldViolation::new(
                    format!("{field}.windows[{i}]"),
                    "start must be before end",
                    "开始时间须早于结束时间。",
                ));
            } else if a < last_end {
                v.push(FieldViolation::new(
                    format!("{field}.windows[{i}]"),
                    "windows must ascend without overlap",
                    "时间段须按先后顺序且不重叠。",
                ));
            }
            last_end = b;
        }
    };
    let mut seen = std::collections::HashSet::new();
    for (i, w) in s.weekly.iter().enumerate() {
        if !(1..=7).contains(&w.weekday) || !seen.insert(w.weekday) {
            v.push(FieldViolation::new(format!("weekly[{i}].weekday"), "a weekday, once", "星期设置有误。"));
        }
        check(format!("weekly[{i}]"), &w.windows, &mut v);
    }
    for (i, e) in s.exceptions.iter().enumerate() {
        let valid_date = e.date.as_ref().and_then(|d| NaiveDate::from_ymd_opt(d.year, d.month as u32, d.day as u32));
        if valid_date.is_none() {
            v.push(FieldViolation::new(format!("exceptions[{i}].date"), "a valid date", "日期有误。"));
        }
        check(format!("exceptions[{i}]"), &e.windows, &mut v);
    }
    if s.closed_notice.chars().count() > 200 {
        v.push(FieldViolation::new("closed_notice", "at most 200 characters", "提示语最多200个字。"));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(a: (i32, i32), b: (i32, i32)) -> common::TimeWindow {
        common::TimeWindow {
            start: Some(common::TimeOfDay { hours: a.0, minutes: a.1 }),
            end: Some(common::TimeOfDay { hours: b.0, minutes: b.1 }),
        }
    }

    fn weekdays() -> pb::BusinessHoursSchedule {
        pb::BusinessHoursSchedule {
            weekly: (1..=5)
                .map(|d| pb::WeekdayHours {
                    weekday: d,
                    windows: vec![window((9, 0), (12, 0)), window((13, 30), (17, 0))],
                })
                .collect(),
            exceptions: vec![pb::DateHours {
                date: Some(common::Date { year: 2026, month: 10, day: 1 }),
                windows: vec![],
                note: "国庆节".into(),
            }],
            ..Default::default()
        }
    }

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        cst().with_ymd_and_hms(y, m, d, h, min, 0).single().expect("time").with_timezone(&Utc)
    }

    #[test]
    fn open_inside_a_window_and_closed_at_lunch() {
        let s = weekdays();
        // 2026-11-24 is a Tuesday.
        assert_eq!(evaluate(&s, at(2026, 11, 24, 10, 0)), (true, None));
        assert_eq!(evaluate(&s, at(2026, 11, 24, 12, 30)), (false, Some(at(2026, 11, 24, 13, 30))));
        assert!(!evaluate(&s, at(2026, 11, 24, 17, 0)).0, "the end is exclusive");
    }

    #[test]
    fn weekend_and_holiday_point_to_the_next_working_morning() {
        let s = weekdays();
        // Saturday 2026-11-28 → Monday 2026-11-30 09:00.
        assert_eq!(evaluate(&s, at(2026, 11, 28, 10, 0)), (false, Some(at(2026, 11, 30, 9, 0))));
        // 2026-10-01 is a Thursday but a holiday → Friday 2026-10-02 09:00.
        assert_eq!(evaluate(&s, at(2026, 10, 1, 10, 0)), (false, Some(at(2026, 10, 2, 9, 0))));
    }

    #[test]
    fn validation_names_bad_windows() {
        let mut s = weekdays();
        s.weekly[0].windows = vec![window((13, 0), (12, 0))];
        s.weekly[1].windows = vec![window((9, 0), (12, 0)), window((11, 0), (14, 0))];
        s.weekly.push(pb::WeekdayHours { weekday: 1, windows: vec![] });
        let v = validate(&s);
        let fields: Vec<&str> = v.iter().map(|v| v.field.as_str()).collect();
        assert!(fields.contains(&"weekly[0].windows[0]"), "{fields:?}");
        assert!(fields.contains(&"weekly[1].windows[1]"), "{fields:?}");
        assert!(fields.contains(&"weekly[5].weekday"), "{fields:?}");
        assert!(validate(&weekdays()).is_empty());
    }

    #[test]
    fn describe_lists_the_weekly_windows() {
        let text = describe(&weekdays());
        assert!(text.contains("周一 9:00-12:00、13:30-17:00"), "{text}");
    }
}
