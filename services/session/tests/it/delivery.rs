//! The delivery contract across replicas: 10,000 messages sent through two session
//! replicas while the subscriber keeps disconnecting and resuming (after_seq) on a random
//! replica end up at the subscriber exactly once each, in order, 1..=10,000.

use std::time::Duration;

use rand::Rng;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use zhengna_platform::server::ServerConfig;
use zhengna_platform::{Caller, Taxpayer};
use zhengna_proto::session::v1 as pb;
use zhengna_proto::session::v1::conversation_service_client::ConversationServiceClient;
use zhengna_session::{App, Config};
use zhengna_test_util::Broker;

const TOTAL: u64 = 10_000;
const SENDERS: u64 = 4;

fn taxpayer() -> Caller {
    Caller::Taxpayer(Taxpayer {
        tax_id: "9137010200DELIVERY1".into(),
        name: "投递测试企业".into(),
        office_code: "13701020000".into(),
        office_name: "历下区税务局".into(),
        tags: vec![],
        phone: String::new(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_messages_across_two_replicas_with_resumes() {
    let broker = Broker::start();
    let (identity, key) = zhengna_test_util::identity();
    let db = zhengna_test_util::fresh_db("delivery");
    let db_name = db.url.expose().rsplit('/').next().unwrap_or_default().to_owned();
    let shutdown = CancellationToken::new();
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let cfg = Config {
            server: ServerConfig::with_port(0, 0),
            db: db.clone(),
            kafka: broker.kafka_config(),
            identity: identity.clone(),
            // Replicas share the attachment store, as they must in production.
            storage: zhengna_session::uploads::StorageConfig {
                local_dir: std::env::temp_dir().join(format!("zhengna-delivery-{db_name}")),
                listen: ([127, 0, 0, 1], 0).into(),
                ..Default::default()
            },
            ..Config::default()
        };
        let app = App::build(cfg, shutdown.clone()).await.expect("replica starts");
        let channel =
            Channel::from_shared(format!("http://{}", app.addr())).expect("url").connect().await.expect("connect");
        tokio::spawn(app.run_until_stopped());
        replicas.push(channel);
    }
    let who = taxpayer();
    fn signed<T>(msg: T, key: &zhengna_platform::identity::IdentityKey, who: &Caller) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        key.attach(who, r.metadata_mut());
        r
    }
    let mut client = ConversationServiceClient::new(replicas[0].clone());
    let conv = client
        .start_conversation(signed(pb::StartConversationRequest::default(), &key, &who))
        .await
        .expect("start")
        .into_inner();
    let conv = conv.conversation.expect("conversation").id;
    // An agent serves the conversation, so the bot stays out and every seq is a taxpayer send.
    let pool = sqlx::PgPool::connect(db.url.expose()).await.expect("db");
    sqlx::query("UPDATE conversations SET mode = 'human', agent_id = 'A1' WHERE id = $1::uuid")
        .bind(&conv)
        .execute(&pool)
        .await
        .expect("human mode");

    // Senders alternate between the replicas.
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let channels = replicas.clone();
        let conv = conv.clone();
        let key = key.clone();
        let who = who.clone();
        senders.push(tokio::spawn(async move {
            for i in 0..TOTAL / SENDERS {
                let mut c = ConversationServiceClient::new(channels[(i % 2) as usize].clone());
                let mut r = tonic::Request::new(pb::SendMessageRequest {
                    conversation_id: conv.clone(),
                    client_msg_id: format!("s{s}-{i}"),
                    content: Some(pb::MessageContent {
                        body: Some(pb::message_content::Body::Text(pb::TextContent {
                            text: format!("消息 {s}-{i}")
                        })),
                    }),
                });
                key.attach(&who, r.metadata_mut());
                c.send_message(r).await.expect("send");
            }
        }));
    }

    // The subscriber reads a random number of messages, hangs up, and resumes after the last
    // seq it saw, on a random replica, until it has everything.
    let mut last = 0u64;
    let mut resumes = 0;
    while last < TOTAL {
        let replica = rand::thread_rng().gen_range(0..2);
        let want = rand::thread_rng().gen_range(1..=400);
        let mut c = ConversationServiceClient::new(replicas[replica].clone());
        let mut stream = c
            .subscribe(signed(pb::SubscribeRequest { conversation_id: conv.clone(), after_seq: last }, &key, &who))
            .await
            .expect("subscribe")
            .into_inner();
        let mut got = 0;
        while got < want && last < TOTAL {
            let item = tokio::time::timeout(Duration::from_secs(20), stream.next()).await.expect("progress within 20s");
            let Some(item) = item else { break };
            if let Some(pb::subscribe_response::Event::Message(m)) = item.expect("stream item").event {
                assert_eq!(m.seq, last + 1, "gap or duplicate after seq {last} (resume #{resumes})");
                last = m.seq;
                got += 1;
            }
        }
        drop(stream);
        resumes += 1;
    }
    for s in senders {
        s.await.expect("sender");
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE conversation_id = $1::uuid")
        .bind(&conv)
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(stored, TOTAL as i64);
    assert!(resumes > 10, "the subscriber resumed {resumes} times");
    pool.close().await;
    shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;
    zhengna_test_util::drop_databases(&[db_name]).await;
}
