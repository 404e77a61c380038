//! 我的发起 / 税局邀请 and the unit's list: every filter alone and combined, paging.

use zhengna_platform::AgentRole;
use zhengna_proto::appointment::v1 as pb;
use zhengna_proto::common::v1 as common;

use crate::*;

fn filter() -> pb::AppointmentFilter {
    pb::AppointmentFilter::default()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_filter_alone_and_combined() {
    let svc = Svc::start().await;
    let tp = taxpayer(7);
    let staff = agent(OFFICE, AgentRole::Agent);
    let mut client = svc.taxpayer_client().await;
    let mut desk = svc.desk_client().await;
    let (d1_10, d1_14, d2_10, d2_14) =
        (weekday_at(0, 10, 0), weekday_at(0, 14, 0), weekday_at(1, 10, 0), weekday_at(1, 14, 0));

    let book = |id: &str, slot, service: &str, method: pb::InteractionMethod, category: &str, text: &str| {
        pb::BookAppointmentRequest {
            client_request_id: id.into(),
            service_type: service.into(),
            method: method as i32,
            business_category: category.into(),
            slot_start: Some(ts(slot)),
            description: text.into(),
            ..Default::default()
        }
    };
    let mut number = std::collections::HashMap::new();
    for (key, req) in [
        ("A", book("a", d1_10, "general", pb::InteractionMethod::Online, "declaration", "咨询增值税减免申报")),
        ("B", book("b", d1_14, "policy", pb::InteractionMethod::Phone, "invoice", "发票红冲操作")),
        ("C", book("c", d2_10, "operation", pb::InteractionMethod::Online, "invoice", "数电发票开具")),
    ] {
        let a = client.book_appointment(svc.req(req, &tp)).await.expect("book").into_inner().appointment.expect("a");
        number.insert(key, a);
    }
    let c_id = number["C"].id.clone();
    client
        .cancel_appointment(svc.req(pb::CancelAppointmentRequest { id: c_id, reason: String::new() }, &tp))
        .await
        .expect("cancel C");
    let mut inv = invitation("d", &tp, d2_14);
    inv.description = "请来核对发票".into();
    let d = desk.invite_taxpayer(svc.req(inv, &staff)).await.expect("invite D").into_inner().appointment.expect("a");
    number.insert("D", d);
    // Someone else's appointment never shows up.
    client.book_appointment(svc.req(booking("x", d1_10), &taxpayer(8))).await.expect("other taxpayer");

    let by_id: std::collections::HashMap<String, &'static str> =
        number.iter().map(|(k, a)| (a.id.clone(), *k)).collect();
    let list = |f: pb::AppointmentFilter| {
        let mut client = client.clone();
        let req = svc.req(pb::ListAppointmentsRequest { filter: Some(f), page: None }, &tp);
        let by_id = by_id.clone();
        async move {
            let mut keys: Vec<&str> = client
                .list_appointments(req)
                .await
                .expect("list")
                .into_inner()
                .appointments
                .iter()
                .map(|a| by_id[&a.id])
                .collect();
            keys.sort();
            keys
        }
    };
    let a_number = number["A"].number.clone();
    assert_eq!(list(filter()).await, ["A", "B", "C", "D"]);
    assert_eq!(list(pb::AppointmentFilter { number: a_number.clone(), ..filter() }).await, ["A"]);
    assert_eq!(
        list(pb::AppointmentFilter { number: a_number.to_lowercase(), ..filter() }).await,
        ["A"],
        "case does not matter"
    );
    assert!(
        list(pb::AppointmentFilter { number: a_number[..10].into(), ..filter() }).await.is_empty(),
        "numbers match exactly"
    );
    let day1 = common::TimeRange { start: Some(ts(d1_10)), end: Some(ts(d1_14)) };
    assert_eq!(list(pb::AppointmentFilter { slot_range: Some(day1), ..filter() }).await, ["A", "B"]);
    let from_d2 = common::TimeRange { start: Some(ts(d2_10)), end: None };
    assert_eq!(list(pb::AppointmentFilter { slot_range: Some(from_d2), ..filter() }).await, ["C", "D"]);
    assert_eq!(list(pb::AppointmentFilter { service_type: "policy".into(), ..filter() }).await, ["B"]);
    assert_eq!(
        list(pb::AppointmentFilter { method: pb::InteractionMethod::Phone as i32, ..filter() }).await,
        ["B", "D"]
    );
    assert_eq!(list(pb::AppointmentFilter { business_category: "invoice".into(), ..filter() }).await, ["B", "C", "D"]);
    assert_eq!(list(pb::AppointmentFilter { description: "发票".into(), ..filter() }).await, ["B", "C", "D"]);
    assert_eq!(list(pb::AppointmentFilter { description: "红冲".into(), ..filter() }).await, ["B"]);
    assert!(
        list(pb::AppointmentFilter { description: "%".into(), ..filter() }).await.is_empty(),
        "LIKE wildcards are literal"
    );
    assert_eq!(
        list(pb::AppointmentFilter { confirm_status: pb::ConfirmStatus::Cancelled as i32, ..filter() }).await,
        ["C"]
    );
    assert_eq!(
        list(pb::AppointmentFilter { confirm_status: pb::ConfirmStatus::Pending as i32, ..filter() }).await,
        ["D"]
    );
    assert_eq!(
        list(pb::AppointmentFilter { interaction_status: pb::InteractionStatus::Failed as i32, ..filter() }).await,
        ["C"]
    );
    assert_eq!(
        list(pb::AppointmentFilter { interaction_status: pb::InteractionStatus::Waiting as i32, ..filter() }).await,
        ["A", "B", "D"]
    );
    assert_eq!(list(pb::AppointmentFilter { origin: pb::AppointmentOrigin::Bureau as i32, ..filter() }).await, ["D"]);
    assert_eq!(
        list(pb::AppointmentFilter { origin: pb::AppointmentOrigin::Taxpayer as i32, ..filter() }).await,
        ["A", "B", "C"]
    );
    // Combined.
    assert_eq!(
        list(pb::AppointmentFilter {
            business_category: "invoice".into(),
            method: pb::InteractionMethod::Online as i32,
            ..filter()
        })
        .await,
        ["C"]
    );
    assert_eq!(
        list(pb::AppointmentFilter {
            origin: pb::AppointmentOrigin::Taxpayer as i32,
            description: "发票".into(),
            confirm_status: pb::ConfirmStatus::Booked as i32,
            ..filter()
        })
        .await,
        ["B"]
    );

    // Paging: newest slot first, a token to the next page, the total.
    let first = client
        .list_appointments(svc.req(
            pb::ListAppointmentsRequest {
                filter: None,
                page: Some(common::PageRequest { page_size: 3, page_token: String::new() }),
            },
            &tp,
        ))
        .await
        .expect("page 1")
        .into_inner();
    let page = first.page.expect("page");
    assert_eq!((first.appointments.len(), page.total_size), (3, 4));
    assert_eq!(by_id[&first.appointments[0].id], "D");
    let second = client
        .list_appointments(svc.req(
            pb::ListAppointmentsRequest {
                filter: None,
                page: Some(common::PageRequest { page_size: 3, page_token: page.next_page_token }),
            },
            &tp,
        ))
        .await
        .expect("page 2")
        .into_inner();
    assert_eq!(second.appointments.len(), 1);
    assert!(second.page.expect("page").next_page_token.is_empty());

    // A bad filter names its field.
    let err = client
        .list_appointments(svc.req(
            pb::ListAppointmentsRequest {
                filter: Some(pb::AppointmentFilter {
                    slot_range: Some(common::TimeRange { start: Some(ts(d2_10)), end: Some(ts(d1_10)) }),
                    ..filter()
                }),
                page: None,
            },
            &tp,
        ))
        .await
        .expect_err("inverted range");
    assert_eq!(field_of(&err), ["filter.slot_range"]);

    // The unit's view: everyone's, searchable by taxpayer name.
    let unit = desk
        .list_office_appointments(svc.req(pb::ListOfficeAppointmentsRequest::default(), &staff))
        .await
        .expect("unit list")
        .into_inner();
    assert_eq!(unit.page.expect("page").total_size, 5);
    let named = desk
        .list_office_appointments(
            svc.req(
                pb::ListOfficeAppointmentsRequest { taxpayer_query: "企业7号".into(), ..Default::default() },
                &staff,
            ),
        )
        .await
        .expect("by name")
        .into_inner();
    assert_eq!(named.appointments.len(), 3, "the invitation has no name; the three bookings match");
    svc.stop().await;
}
