//! Precision-push benchmark: loads N synthetic taxpayers (default 50,000) into a fresh
//! database's directory, sends one push to all of them, checks every taxpayer got exactly
//! one notice, and prints the timings.
//!
//!     cargo run -q -p zhengna-messaging --example bench_push [-- N]
//!
//! Needs PostgreSQL on 127.0.0.1:5432 (or ZHENGNA_TEST_PG). The work happens in PostgreSQL
//! (one INSERT … SELECT), so the build profile barely matters.

use std::time::Instant;

use chrono::Utc;
use zhengna_messaging::push::{Audience, NewPush, Profile, Pushes, upsert_profiles};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(50_000);
    let db = zhengna_test_util::fresh_db("bench_push");
    let name = db.url.expose().rsplit('/').next().unwrap_or_default().to_owned();
    let pool = zhengna_platform::db::connect(&db, &zhengna_messaging::MIGRATOR).await?;

    let load = Instant::now();
    let offices = ["13701020000", "13701030000", "13702020000", "13703010000"];
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let profiles: Vec<Profile> = chunk
            .iter()
            .map(|i| Profile {
                tax_id: format!("91370000BENCH{i:07}"),
                name: format!("基准企业{i}"),
                office_code: offices[i % offices.len()].to_owned(),
                tags: vec![if i % 3 == 0 { "一般纳税人" } else { "小规模纳税人" }.to_owned(), "山东".to_owned()],
            })
            .collect();
        upsert_profiles(&pool, &profiles).await?;
    }
    let load_ms = load.elapsed().as_millis();

    let pushes = Pushes::new(pool.clone());
    pushes
        .create(NewPush {
            client_key: "bench".into(),
            title: "申报期提醒".into(),
            body: "本月征期截止日为15日，请及时完成申报。".into(),
            link_url: String::new(),
            category: "todo",
            audience: Audience { tags: vec!["山东".into()], ..Audience::default() },
            scope_prefix: "137".into(),
            scheduled_at: Utc::now(),
            created_by_id: "bench".into(),
            created_by_name: "bench".into(),
        })
        .await?;
    let send = Instant::now();
    let (sent, notices) = pushes.send_due(Utc::now()).await?;
    let send_ms = send.elapsed().as_millis().max(1);

    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT taxpayer_id) FROM notifications WHERE push_id IS NOT NULL")
            .fetch_one(&pool)
            .await?;
    pool.close().await;
    zhengna_test_util::drop_databases(&[name]).await;
    anyhow::ensure!(
        sent == 1 && notices as usize == n && rows as usize == n && distinct == rows,
        "not exactly one each"
    );
    println!(
        "push_bench taxpayers={n} directory_load_ms={load_ms} send_ms={send_ms} notices={notices} notices_per_s={:.0} exactly_once=true",
        n as f64 / (send_ms as f64 / 1000.0)
    );
    Ok(())
}
