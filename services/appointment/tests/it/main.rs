//! Appointment service tests: the real service on port 0 against a fresh PostgreSQL
//! database and a tansu broker, driven over gRPC with signed identities.

mod concurrency;
mod flows;
mod queries;

use std::net::SocketAddr;

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc, Weekday};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use zhengna_appointment::{App, Config, MIGRATOR};
use zhengna_platform::identity::IdentityKey;
use zhengna_platform::server::ServerConfig;
use zhengna_platform::{Agent, AgentRole, Caller, Taxpayer};
use zhengna_proto::appointment::v1 as pb;
use zhengna_proto::appointment::v1::appointment_admin_service_client::AppointmentAdminServiceClient;
use zhengna_proto::appointment::v1::appointment_desk_service_client::AppointmentDeskServiceClient;
use zhengna_proto::appointment::v1::appointment_service_client::AppointmentServiceClient;
use zhengna_test_util::Broker;

pub const OFFICE: &str = "13701020000";

pub struct Svc {
    pub addr: SocketAddr,
    pub key: IdentityKey,
    pub db: zhengna_platform::db::DbConfig,
    shutdown: CancellationToken,
    _broker: Broker,
}

impl Svc {
    pub async fn start() -> Self {
        let broker = Broker::start();
        let (identity, key) = zhengna_test_util::identity();
        let db = zhengna_test_util::fresh_db("appt");
        let shutdown = CancellationToken::new();
        let mut cfg = Config {
            server: ServerConfig::with_port(0, 0),
            db: db.clone(),
            kafka: broker.kafka_config(),
            identity,
            ..Config::default()
        };
        // Tests drive the check themselves, with chosen clocks.
        cfg.scheduler.enabled = false;
        let app = App::build(cfg, shutdown.clone()).await.expect("appointment service starts");
        let addr = app.addr();
        tokio::spawn(app.run_until_stopped());
        Self { addr, key, db, shutdown, _broker: broker }
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr)).expect("url").connect().await.expect("connect")
    }

    pub async fn taxpayer_client(&self) -> AppointmentServiceClient<Channel> {
        AppointmentServiceClient::new(self.channel().await)
    }

    pub async fn desk_client(&self) -> AppointmentDeskServiceClient<Channel> {
        AppointmentDeskServiceClient::new(self.channel().await)
    }

    pub async fn admin_client(&self) -> AppointmentAdminServiceClient<Channel> {
        AppointmentAdminServiceClient::new(self.channel().await)
    }

    pub fn req<T>(&self, msg: T, who: &Caller) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        self.key.attach(who, r.metadata_mut());
        r
    }

    /// A second handle on the same data, as another replica would have.
    pub async fn replica_store(&self) -> zhengna_appointment::store::Appointments {
        let pool = zhengna_platform::db::connect(&self.db, &MIGRATOR).await.expect("pool");
        zhengna_appointment::store::Appointments::new(pool)
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let name = self.db.url.expose().rsplit('/').next().unwrap_or_default().to_owned();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        zhengna_test_util::drop_databases(&[name]).await;
    }
}

pub fn taxpayer(n: usize) -> Caller {
    Caller::Taxpayer(Taxpayer {
        tax_id: format!("9137010200DEMO{n:04}"),
        name: format!("示例企业{n}号有限公司"),
        office_code: OFFICE.into(),
        office_name: "国家税务总局济南市历下区税务局".into(),
        tags: vec!["小规模纳税人".into()],
        phone: "13800000000".into(),
    })
}

pub fn agent(office: &str, role: AgentRole) -> Caller {
    Caller::Agent(Agent {
        agent_id: format!("A-{office}"),
        name: "王税官".into(),
        office_code: office.into(),
        groups: vec![],
        role,
    })
}

/// `h:m` Shanghai on the next weekday at least two days ahead (inside default hours).
pub fn next_weekday_at(h: u32, m: u32) -> DateTime<Utc> {
    weekday_at(0, h, m)
}

/// `h:m` Shanghai on the `skip`-th weekday after the one [`next_weekday_at`] picks.
pub fn weekday_at(skip: usize, h: u32, m: u32) -> DateTime<Utc> {
    let mut day = zhengna_platform::time::shanghai_today() + Duration::days(2);
    let mut left = skip;
    loop {
        while matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            day += Duration::days(1);
        }
        if left == 0 {
            break;
        }
        left -= 1;
        day += Duration::days(1);
    }
    zhengna_platform::time::shanghai()
        .from_local_datetime(&day.and_hms_opt(h, m, 0).expect("time"))
        .single()
        .expect("unambiguous")
        .with_timezone(&Utc)
}

pub fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 }
}

pub fn booking(id: &str, slot: DateTime<Utc>) -> pb::BookAppointmentRequest {
    pb::BookAppointmentRequest {
        client_request_id: id.into(),
        method: pb::InteractionMethod::Online as i32,
        business_category: "declaration".into(),
        slot_start: Some(ts(slot)),
        description: "咨询小规模纳税人增值税减免申报".into(),
        ..Default::default()
    }
}

pub fn invitation(id: &str, taxpayer: &Caller, slot: DateTime<Utc>) -> pb::InviteTaxpayerRequest {
    let Caller::Taxpayer(t) = taxpayer else { panic!("taxpayer expected") };
    pb::InviteTaxpayerRequest {
        client_request_id: id.into(),
        taxpayer_id: t.tax_id.clone(),
        method: pb::InteractionMethod::Phone as i32,
        business_category: "invoice".into(),
        slot_start: Some(ts(slot)),
        description: "请携带发票核对相关事项".into(),
        phone: "0531-88888888".into(),
        ..Default::default()
    }
}

pub fn field_of(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

pub fn user_message(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status.get_error_details().localized_message().map(|m| m.message.clone()).unwrap_or_default()
}
