//! The two appointment state machines of the operation guide (§2.2.1.3 taxpayer-initiated,
//! §2.2.3 bureau-initiated), as one explicit transition table per origin.
//!
//! 确认状态 (confirmation) moves by the table; 互动状态 (interaction) follows it:
//!
//! | confirmation            | interaction                 |
//! |-------------------------|-----------------------------|
//! | 待确认 Pending           | 待互动 Waiting               |
//! | 预约成功 Booked          | 待互动 Waiting               |
//! | 互动成功 Interacted      | 互动中 InProgress / 已办结 Completed |
//! | 取消预约 / 失约 / 已拒绝 / 预约失败 | 互动失败 Failed     |
//!
//! Time rules (when an action is allowed relative to the slot) live in [`guard`], apart
//! from the table, so the table stays a literal transcription of the guide.

use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// 我的发起: the taxpayer booked.
    Taxpayer,
    /// 税局邀请: an agent invited the taxpayer.
    Bureau,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Confirm {
    Pending,
    Booked,
    Interacted,
    Cancelled,
    Missed,
    Rejected,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interaction {
    Waiting,
    InProgress,
    Completed,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct State {
    pub confirm: Confirm,
    pub interaction: Interaction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// The taxpayer accepts an invitation (接受预约).
    Accept,
    /// The taxpayer rejects an invitation with a reason (拒绝预约).
    Reject,
    /// The taxpayer (or the unit's agent) cancels an accepted appointment (取消预约).
    Cancel,
    /// The agent starts the interaction (依约发起互动).
    Start,
    /// The agent completes it (已办结).
    Complete,
    /// The :15/:45 check: an accepted appointment's slot passed without an interaction (失约).
    Miss,
    /// The :15/:45 check: an invitation was not answered by its slot (预约失败).
    Fail,
}

impl State {
    pub const fn new(confirm: Confirm, interaction: Interaction) -> Self {
        Self { confirm, interaction }
    }

    /// Where each origin starts.
    pub const fn initial(origin: Origin) -> Self {
        match origin {
            Origin::Taxpayer => Self::new(Confirm::Booked, Interaction::Waiting),
            Origin::Bureau => Self::new(Confirm::Pending, Interaction::Waiting),
        }
    }

    /// No action leads out of a terminal state.
    pub fn is_terminal(self) -> bool {
        matches!(self.confirm, Confirm::Cancelled | Confirm::Missed | Confirm::Rejected | Confirm::Failed)
            || self.interaction == Interaction::Completed
    }

    /// Whether the pair is one the guide allows at all.
    pub fn is_consistent(self) -> bool {
        use Confirm as C;
        use Interaction as I;
        matches!(
            (self.confirm, self.interaction),
            (C::Pending | C::Booked, I::Waiting)
                | (C::Interacted, I::InProgress | I::Completed)
                | (C::Cancelled | C::Missed | C::Rejected | C::Failed, I::Failed)
        )
    }
}

/// The transition table. `None` means the guide has no such transition.
pub fn next(origin: Origin, from: State, action: Action) -> Option<State> {
    use Action as A;
    use Confirm as C;
    use Interaction as I;
    use Origin as O;
    let to = match (origin, from.confirm, from.interaction, action) {
        // §2.2.3 ② ⑤ ⑥: an invitation is accepted, rejected, or fails unanswered.
        (O::Bureau, C::Pending, I::Waiting, A::Accept) => (C::Booked, I::Waiting),
        (O::Bureau, C::Pending, I::Waiting, A::Reject) => (C::Rejected, I::Failed),
        (O::Bureau, C::Pending, I::Waiting, A::Fail) => (C::Failed, I::Failed),
        // §2.2.1.3 and §2.2.3 from 预约成功, for both origins: cancel, interact, or miss.
        (_, C::Booked, I::Waiting, A::Cancel) => (C::Cancelled, I::Failed),
        (_, C::Booked, I::Waiting, A::Start) => (C::Interacted, I::InProgress),
        (_, C::Booked, I::Waiting, A::Miss) => (C::Missed, I::Failed),
        // 互动中 → 已办结.
        (_, C::Interacted, I::InProgress, A::Complete) => (C::Interacted, I::Completed),
        _ => return None,
    };
    Some(State::new(to.0, to.1))
}

/// How long before its slot an agent may start an appointment.
pub const START_EARLY: Duration = Duration::minutes(30);

/// The slot of an appointment and the current time, for the time rules.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub slot_start: DateTime<Utc>,
    pub slot_end: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

/// Why an action is not allowed now, in English (logs) and Chinese (the widget).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub user_message: &'static str,
}

/// Time rules on top of the table:
/// - accepting, rejecting and cancelling happen before the slot starts;
/// - an agent starts no earlier than 30 minutes before the slot and before it ends;
/// - 失约 only once the slot has ended; 预约失败 only once the slot has started.
pub fn guard(action: Action, t: Timing) -> Result<(), Refusal> {
    let ok = match action {
        Action::Accept | Action::Reject | Action::Cancel => t.now < t.slot_start,
        Action::Start => t.now >= t.slot_start - START_EARLY && t.now < t.slot_end,
        Action::Complete => true,
        Action::Miss => t.now >= t.slot_end,
        Action::Fail => t.now >= t.slot_start,
    };
    if ok {
        return Ok(());
    }
    Err(match action {
        Action::Accept => {
            Refusal { reason: "the slot has started", user_message: "预约时间已到，无法再接受该邀请。" }
        }
        Action::Reject => {
            Refusal { reason: "the slot has started", user_message: "预约时间已到，无法再拒绝该邀请。" }
        }
        Action::Cancel => {
            Refusal { reason: "the slot has started", user_message: "预约时间已到，无法取消预约。" }
        }
        Action::Start => Refusal {
            reason: "outside the start window (30 minutes before the slot until its end)",
            user_message: "未到预约服务时间或预约时间已过，暂不能发起互动。",
        },
        Action::Complete => Refusal { reason: "not allowed", user_message: "当前状态下无法办结。" },
        Action::Miss | Action::Fail => {
            Refusal { reason: "the slot is not due yet", user_message: "预约尚未到期。" }
        }
    })
}

/// The message for an action the table does not allow from `from`.
pub fn illegal(action: Action, from: State) -> Refusal {
    let user_message = match (action, from.confirm) {
        (Action::Accept | Action::Reject, _) => "该预约不是待确认的税局邀请，无法接受或拒绝。",
        (Action::Cancel, Confirm::Pending) => "税局邀请尚未接受，如不参加请选择“拒绝预约”。",
        (Action::Cancel, _) => "只有预约成功且未开始的预约可以取消。",
        (Action::Start, _) => "只有预约成功的预约可以发起互动。",
        (Action::Complete, _) => "只有互动中的预约可以办结。",
        (Action::Miss | Action::Fail, _) => "该预约的状态已变化。",
    };
    Refusal { reason: "illegal transition for the current status", user_message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL_ACTIONS: [Action; 7] =
        [Action::Accept, Action::Reject, Action::Cancel, Action::Start, Action::Complete, Action::Miss, Action::Fail];

    #[test]
    fn taxpayer_table_is_the_guides() {
        let s = State::initial(Origin::Taxpayer);
        assert_eq!(s, State::new(Confirm::Booked, Interaction::Waiting));
        assert_eq!(
            next(Origin::Taxpayer, s, Action::Cancel),
            Some(State::new(Confirm::Cancelled, Interaction::Failed))
        );
        assert_eq!(next(Origin::Taxpayer, s, Action::Miss), Some(State::new(Confirm::Missed, Interaction::Failed)));
        let started = next(Origin::Taxpayer, s, Action::Start).expect("start");
        assert_eq!(started, State::new(Confirm::Interacted, Interaction::InProgress));
        assert_eq!(
            next(Origin::Taxpayer, started, Action::Complete),
            Some(State::new(Confirm::Interacted, Interaction::Completed))
        );
        for a in [Action::Accept, Action::Reject, Action::Fail, Action::Complete] {
            assert_eq!(next(Origin::Taxpayer, s, a), None, "{a:?} from 预约成功");
        }
    }

    #[test]
    fn bureau_table_is_the_guides() {
        let s = State::initial(Origin::Bureau);
        assert_eq!(s.confirm, Confirm::Pending);
        assert_eq!(next(Origin::Bureau, s, Action::Accept), Some(State::new(Confirm::Booked, Interaction::Waiting)));
        assert_eq!(next(Origin::Bureau, s, Action::Reject), Some(State::new(Confirm::Rejected, Interaction::Failed)));
        assert_eq!(next(Origin::Bureau, s, Action::Fail), Some(State::new(Confirm::Failed, Interaction::Failed)));
        for a in [Action::Cancel, Action::Start, Action::Complete, Action::Miss] {
            assert_eq!(next(Origin::Bureau, s, a), None, "{a:?} from 待确认");
        }
    }

    #[test]
    fn terminal_states_have_no_way_out() {
        for origin in [Origin::Taxpayer, Origin::Bureau] {
            for confirm in [Confirm::Cancelled, Confirm::Missed, Confirm::Rejected, Confirm::Failed] {
                let s = State::new(confirm, Interaction::Failed);
                assert!(ALL_ACTIONS.iter().all(|a| next(origin, s, *a).is_none()));
            }
            let done = State::new(Confirm::Interacted, Interaction::Completed);
            assert!(ALL_ACTIONS.iter().all(|a| next(origin, done, *a).is_none()));
        }
    }

    #[test]
    fn time_rules() {
        let slot_start = DateTime::from_timestamp(1_000_000, 0).expect("ts");
        let slot_end = slot_start + Duration::minutes(30);
        let at = |m: i64| Timing { slot_start, slot_end, now: slot_start + Duration::minutes(m) };
        assert!(guard(Action::Cancel, at(-1)).is_ok());
        assert!(guard(Action::Cancel, at(0)).is_err());
        assert!(guard(Action::Start, at(-31)).is_err());
        assert!(guard(Action::Start, at(-30)).is_ok());
        assert!(guard(Action::Start, at(29)).is_ok());
        assert!(guard(Action::Start, at(30)).is_err());
        assert!(guard(Action::Miss, at(29)).is_err());
        assert!(guard(Action::Miss, at(30)).is_ok());
        assert!(guard(Action::Fail, at(-1)).is_err());
        assert!(guard(Action::Fail, at(0)).is_ok());
    }

    /// An operation in a random history: an action attempted at a time, or the clock check.
    #[derive(Debug, Clone)]
    enum Op {
        Try(Action, i64),
        Tick(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let action = prop::sample::select(ALL_ACTIONS.to_vec());
        prop_oneof![(action, -120i64..120).prop_map(|(a, m)| Op::Try(a, m)), (-120i64..180).prop_map(Op::Tick),]
    }

    /// The states the guide's tables can reach for an origin.
    fn allowed(origin: Origin, s: State) -> bool {
        let confirms: &[Confirm] = match origin {
            Origin::Taxpayer => &[Confirm::Booked, Confirm::Interacted, Confirm::Cancelled, Confirm::Missed],
            Origin::Bureau => &[
                Confirm::Pending,
                Confirm::Booked,
                Confirm::Interacted,
                Confirm::Cancelled,
                Confirm::Missed,
                Confirm::Rejected,
                Confirm::Failed,
            ],
        };
        confirms.contains(&s.confirm) && s.is_consistent()
    }

    proptest! {
        /// Random operations and clock ticks never leave the guide's tables, the
        /// interaction status always matches the confirmation status, and terminal states
        /// stay put.
        #[test]
        fn random_histories_stay_inside_the_tables(bureau in any::<bool>(), ops in prop::collection::vec(op(), 0..40)) {
            let origin = if bureau { Origin::Bureau } else { Origin::Taxpayer };
            let slot_start = DateTime::from_timestamp(10_000_000, 0).expect("ts");
            let slot_end = slot_start + Duration::minutes(30);
            let mut s = State::initial(origin);
            prop_assert!(allowed(origin, s));
            for op in ops {
                let before = s;
                match op {
                    Op::Try(action, minute) => {
                        let t = Timing { slot_start, slot_end, now: slot_start + Duration::minutes(minute) };
                        if let (Ok(()), Some(to)) = (guard(action, t), next(origin, s, action)) {
                            s = to;
                        }
                    }
                    // The scheduled check applies whichever of Miss / Fail is due.
                    Op::Tick(minute) => {
                        let t = Timing { slot_start, slot_end, now: slot_start + Duration::minutes(minute) };
                        for action in [Action::Miss, Action::Fail] {
                            if let (Ok(()), Some(to)) = (guard(action, t), next(origin, s, action)) {
                                s = to;
                            }
                        }
                    }
                }
                prop_assert!(allowed(origin, s), "{origin:?}: {before:?} -> {s:?}");
                if before.is_terminal() {
                    prop_assert_eq!(before, s, "terminal state changed");
                }
            }
        }
    }
}
