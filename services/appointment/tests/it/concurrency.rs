//! Capacity under contention and the scheduled check on two replicas.

use chrono::Duration;
use futures::future::join_all;
use zhengna_platform::AgentRole;
use zhengna_proto::appointment::v1 as pb;
use zhengna_proto::common::v1 as common;

use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_bookings_for_ten_places() {
    let svc = Svc::start().await;
    let slot = next_weekday_at(10, 0);
    // The unit's supervisor sets 10 places at 10:00 every weekday.
    let mut admin = svc.admin_client().await;
    let weekly = (1..=5)
        .map(|d| pb::WeekdaySlots {
            weekday: d,
            slots: vec![pb::SlotCapacity { start: Some(common::TimeOfDay { hours: 10, minutes: 0 }), capacity: 10 }],
        })
        .collect();
    admin
        .update_slot_capacity(svc.req(
            pb::UpdateSlotCapacityRequest {
                config: Some(pb::SlotCapacityConfig {
                    unit_code: OFFICE.into(),
                    weekly,
                    booking_horizon_days: 30,
                    min_lead_minutes: 60,
                    ..Default::default()
                }),
            },
            &agent(OFFICE, AgentRole::Supervisor),
        ))
        .await
        .expect("configure capacity");

    let channel = svc.channel().await;
    let attempts = (0..200).map(|i| {
        let mut client = pb::appointment_service_client::AppointmentServiceClient::new(channel.clone());
        let req = svc.req(booking(&format!("c-{i}"), slot), &taxpayer(i));
        async move { client.book_appointment(req).await }
    });
    let results = join_all(attempts).await;
    let booked = results.iter().filter(|r| r.is_ok()).count();
    let refused: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(booked, 10, "exactly the capacity is booked");
    assert_eq!(refused.len(), 190);
    for status in &refused {
        assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
        assert_eq!(user_message(status), "该时段已约满，请选择其他时间。");
    }
    // The options now show the slot full.
    let mut client = svc.taxpayer_client().await;
    let options = client
        .get_booking_options(svc.req(pb::GetBookingOptionsRequest::default(), &taxpayer(0)))
        .await
        .expect("options")
        .into_inner();
    let s = options
        .slots
        .iter()
        .find(|s| s.start.as_ref().map(|t| t.seconds) == Some(slot.timestamp()))
        .expect("slot listed");
    assert_eq!((s.capacity, s.remaining), (10, 0));
    // Cancelling one frees one place.
    let mine = client
        .list_appointments(svc.req(pb::ListAppointmentsRequest::default(), &taxpayer_of(&results)))
        .await
        .expect("list")
        .into_inner()
        .appointments;
    client
        .cancel_appointment(svc.req(
            pb::CancelAppointmentRequest { id: mine[0].id.clone(), reason: "时间冲突".into() },
            &taxpayer_of(&results),
        ))
        .await
        .expect("cancel");
    client.book_appointment(svc.req(booking("late", slot), &taxpayer(999))).await.expect("the freed place");
    assert_eq!(
        client.book_appointment(svc.req(booking("later", slot), &taxpayer(998))).await.expect_err("full again").code(),
        tonic::Code::FailedPrecondition
    );
    svc.stop().await;
}

/// The first taxpayer whose booking succeeded.
fn taxpayer_of(
    results: &[Result<tonic::Response<pb::BookAppointmentResponse>, tonic::Status>],
) -> zhengna_platform::Caller {
    let r = results.iter().find_map(|r| r.as_ref().ok()).expect("a booking");
    let a = r.get_ref().appointment.as_ref().expect("appointment");
    let n: usize = a.taxpayer_id.trim_start_matches("9137010200DEMO").parse().expect("number");
    taxpayer(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_check_each_appointment_once() {
    let svc = Svc::start().await;
    let slot = next_weekday_at(14, 0);
    let mut client = svc.taxpayer_client().await;
    let mut desk = svc.desk_client().await;
    let mut booked = Vec::new();
    for i in 0..4 {
        let a = client.book_appointment(svc.req(booking(&format!("b{i}"), slot), &taxpayer(i))).await.expect("book");
        booked.push(a.into_inner().appointment.expect("a").id);
    }
    let mut invited = Vec::new();
    for i in 10..13 {
        // The default capacity is 5 a slot: invitations go to the next half hour.
        let later = slot + Duration::minutes(30);
        let a = desk
            .invite_taxpayer(
                svc.req(invitation(&format!("i{i}"), &taxpayer(i), later), &agent(OFFICE, AgentRole::Agent)),
            )
            .await;
        invited.push(a.expect("invite").into_inner().appointment.expect("a").id);
    }
    let a = svc.replica_store().await;
    let b = svc.replica_store().await;
    // Before the slot nothing is due.
    assert_eq!(a.run_due_check(slot - Duration::minutes(10)).await.expect("check"), (0, 0));
    let after = slot + Duration::minutes(75);
    // Both replicas' passes at once, twice over (a repeated tick), with and without the lock.
    let (r1, r2) = tokio::join!(a.run_due_check(after), b.run_due_check(after));
    let (missed1, failed1) = r1.expect("replica a");
    let (missed2, failed2) = r2.expect("replica b");
    assert_eq!((missed1 + missed2, failed1 + failed2), (4, 3));
    let (l1, l2) = tokio::join!(
        zhengna_appointment::scheduler::check_once(&a, after),
        zhengna_appointment::scheduler::check_once(&b, after)
    );
    let total: usize = [l1.expect("a"), l2.expect("b")].into_iter().flatten().map(|(m, f)| m + f).sum();
    assert_eq!(total, 0, "a repeated tick changes nothing");
    for id in &booked {
        let id = id.parse().expect("uuid");
        assert_eq!(a.history_count(id, "missed").await.expect("count"), 1);
    }
    for id in &invited {
        let id = id.parse().expect("uuid");
        assert_eq!(a.history_count(id, "failed").await.expect("count"), 1);
    }
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE event_type IN ('zhengna.appointment.v1.Missed', 'zhengna.appointment.v1.Failed')")
        .fetch_one(a.pool())
        .await
        .expect("outbox");
    assert_eq!(events, 7, "one event per transition");
    svc.stop().await;
}
