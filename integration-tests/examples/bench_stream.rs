//! Streaming benchmark: the real gateway and services (one process, real PostgreSQL and a
//! tansu broker). Opens N `Subscribe` streams through the gateway, one per taxpayer
//! conversation, then sends messages into them at a target rate and measures delivery end
//! to end (SendMessage call → the message arriving on the subscriber's stream).
//!
//!   cargo run --release -p zhengna-integration-tests --example bench_stream -- \
//!       [--streams 20000] [--rate 2000] [--seconds 20] [--senders 64]
//!
//! Memory per stream is the growth of this process's resident set while the streams open,
//! divided by their number; it includes both ends (the client's stream state as well as the
//! gateway's and the session service's), so it is an upper bound for the server side.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio_stream::StreamExt;
use tonic::transport::Channel;
use zhengna_integration_tests::{Stack, authed};
use zhengna_proto::session::v1 as pb;
use zhengna_proto::session::v1::conversation_service_client::ConversationServiceClient;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

struct Open {
    conversation: String,
    token: String,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let streams = arg("--streams", 20_000) as usize;
    let rate = arg("--rate", 2_000);
    let seconds = arg("--seconds", 20);
    let senders = arg("--senders", 64).max(1) as usize;
    let per_channel = arg("--per-connection", 500) as usize;

    eprintln!("starting the stack…");
    let stack = Stack::start().await;
    let endpoint = format!("http://{}", stack.gateway);
    let channels: Vec<Channel> = {
        let mut v = Vec::new();
        for _ in 0..streams.div_ceil(per_channel).max(1) {
            v.push(Channel::from_shared(endpoint.clone()).expect("url").connect().await.expect("connect"));
        }
        v
    };

    // Conversations, one per taxpayer (each its own subject).
    eprintln!("starting {streams} conversations…");
    let started = Instant::now();
    let mut opens: Vec<Open> = Vec::with_capacity(streams);
    let mut batch = tokio::task::JoinSet::new();
    for i in 0..streams {
        let mut claims = stack.claims("taxpayer-jinan");
        claims.sub = format!("91370102BENCH{i:06}");
        let token = stack.minter.mint(&claims).expect("mint");
        let mut client = ConversationServiceClient::new(channels[i % channels.len()].clone());
        batch.spawn(async move {
            let r = client
                .start_conversation(authed(pb::StartConversationRequest { channel: "etax".into() }, &token))
                .await
                .expect("start")
                .into_inner();
            Open { conversation: r.conversation.expect("conversation").id, token }
        });
        if batch.len() >= 64
            && let Some(r) = batch.join_next().await
        {
            opens.push(r.expect("join"));
        }
    }
    while let Some(r) = batch.join_next().await {
        opens.push(r.expect("join"));
    }
    eprintln!("  {} conversations in {:.1}s", opens.len(), started.elapsed().as_secs_f64());

    // Open every stream and wait until each has caught up (it is live end to end).
    let rss_before = rss_kib();
    let caught_up = Arc::new(AtomicUsize::new(0));
    let delivered = Arc::new(AtomicU64::new(0));
    let disorder = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<u64>::with_capacity(200_000)));
    let send_rtts = Arc::new(std::sync::Mutex::new(Vec::<u64>::with_capacity(200_000)));
    let epoch = Instant::now();
    let open_started = Instant::now();
    let mut readers = Vec::with_capacity(streams);
    let wave = arg("--wave", 1000) as usize;
    for (i, o) in opens.iter().enumerate() {
        // Open in waves (as clients arrive), each caught up before the next starts.
        if i > 0 && i % wave == 0 {
            let wave_deadline = Instant::now() + Duration::from_secs(60);
            while caught_up.load(Ordering::Relaxed) < i && Instant::now() < wave_deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let mut client = ConversationServiceClient::new(channels[i % channels.len()].clone());
        let req = authed(pb::SubscribeRequest { conversation_id: o.conversation.clone(), after_seq: 0 }, &o.token);
        let caught_up = caught_up.clone();
        let delivered = delivered.clone();
        let disorder = disorder.clone();
        let latencies = latencies.clone();
        readers.push(tokio::spawn(async move {
            let mut stream = match client.subscribe(req).await {
                Ok(s) => s.into_inner(),
                Err(e) => {
                    eprintln!("subscribe failed: {e}");
                    return;
                }
            };
            let mut last = 0u64;
            while let Some(Ok(ev)) = stream.next().await {
                match ev.event {
                    Some(pb::subscribe_response::Event::CaughtUp(_)) => {
                        caught_up.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(pb::subscribe_response::Event::Message(m)) => {
                        if m.seq != last + 1 && last != 0 {
                            disorder.fetch_add(1, Ordering::Relaxed);
                        }
                        last = m.seq;
                        if let Some(nanos) = m
                            .client_msg_id
                            .strip_prefix("b-")
                            .and_then(|r| r.split('-').next())
                            .and_then(|n| n.parse::<u64>().ok())
                        {
                            let now = epoch.elapsed().as_nanos() as u64;
                            delivered.fetch_add(1, Ordering::Relaxed);
                            if let Ok(mut l) = latencies.lock() {
                                l.push(now.saturating_sub(nanos) / 1000);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(arg("--open-timeout", 300));
    let mut last_report = Instant::now();
    let mut last_count = 0;
    while caught_up.load(Ordering::Relaxed) < streams && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let n = caught_up.load(Ordering::Relaxed);
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!("  … {n} streams live");
            last_report = Instant::now();
            // No progress for 20 s: report what opened.
            if n == last_count && open_started.elapsed() > Duration::from_secs(20) {
                break;
            }
            last_count = n;
        }
    }
    let open_secs = open_started.elapsed().as_secs_f64();
    let live = caught_up.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = rss_kib();
    let per_stream_kib = rss_after.saturating_sub(rss_before) as f64 / live.max(1) as f64;
    eprintln!("  {live} streams live in {open_secs:.1}s; RSS {rss_before} → {rss_after} KiB");

    // Send at the target rate for `seconds`, spread over the open conversations.
    let opens = Arc::new(opens);
    let sent = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let per_sender = rate as f64 / senders as f64;
    let send_started = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..senders {
        let opens = opens.clone();
        let sent = sent.clone();
        let failed = failed.clone();
        let send_rtts = send_rtts.clone();
        let client = ConversationServiceClient::new(channels[s % channels.len()].clone());
        tasks.push(tokio::spawn(async move {
            // Senders are staggered over one period so the load is even, not 64-wide bursts.
            let period = Duration::from_secs_f64(1.0 / per_sender);
            tokio::time::sleep(period.mul_f64(s as f64 / senders as f64)).await;
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut n = 0usize;
            let end = Instant::now() + Duration::from_secs(seconds);
            let mut inflight = tokio::task::JoinSet::new();
            while Instant::now() < end {
                tick.tick().await;
                let o = &opens[(s + n * senders) % opens.len()];
                n += 1;
                let at = epoch.elapsed().as_nanos() as u64;
                let req = authed(
                    pb::SendMessageRequest {
                        conversation_id: o.conversation.clone(),
                        client_msg_id: format!("b-{at}-{s}-{n}"),
                        content: Some(pb::MessageContent {
                            body: Some(pb::message_content::Body::Emoji(pb::EmojiContent {
                                code: "thumbs_up".into(),
                                alt: String::new(),
                            })),
                        }),
                    },
                    &o.token,
                );
                let mut c = client.clone();
                let sent = sent.clone();
                let failed = failed.clone();
                let send_rtts = send_rtts.clone();
                inflight.spawn(async move {
                    let t = Instant::now();
                    match c.send_message(req).await {
                        Ok(_) => sent.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    if let Ok(mut r) = send_rtts.lock() {
                        r.push(t.elapsed().as_micros() as u64);
                    }
                });
                while inflight.try_join_next().is_some() {}
            }
            while inflight.join_next().await.is_some() {}
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let send_secs = send_started.elapsed().as_secs_f64();
    let total_sent = sent.load(Ordering::Relaxed);
    let wait_until = Instant::now() + Duration::from_secs(10);
    while delivered.load(Ordering::Relaxed) < total_sent && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut l = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    l.sort_unstable();
    let got = delivered.load(Ordering::Relaxed);
    println!();
    println!("| figure | value |");
    println!("|---|---|");
    println!("| open Subscribe streams (live, caught up) | {live} of {streams} |");
    println!("| time to open them | {open_secs:.1} s |");
    println!("| memory per open stream (both ends, upper bound) | {per_stream_kib:.1} KiB |");
    println!("| target send rate | {rate} msg/s for {seconds} s |");
    println!("| sent (accepted) / refused | {total_sent} / {} |", failed.load(Ordering::Relaxed));
    println!("| achieved send rate | {:.0} msg/s |", total_sent as f64 / send_secs);
    println!("| delivered to subscribers | {got} ({:.0} msg/s) |", got as f64 / send_secs);
    println!("| out-of-order or gaps seen | {} |", disorder.load(Ordering::Relaxed));
    println!(
        "| delivery latency p50 / p99 / max | {:.1} / {:.1} / {:.1} ms |",
        pct(&l, 0.5),
        pct(&l, 0.99),
        pct(&l, 1.0)
    );
    let mut r = send_rtts.lock().map(|r| r.clone()).unwrap_or_default();
    r.sort_unstable();
    println!("| SendMessage round trip p50 / p99 | {:.1} / {:.1} ms |", pct(&r, 0.5), pct(&r, 0.99));
    for r in readers {
        r.abort();
    }
    stack.stop().await;
}
