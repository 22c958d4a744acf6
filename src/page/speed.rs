//! How fast `scan` reads a 10 MB list page, beside serde_json reading the
//! same bytes into a `Value` (the reference, measured in the same run):
//!
//! ```text
//! cargo test --release --bin source-persistiq page::speed -- --ignored --nocapture
//! ```
//!
//! Best of 7 runs each; MB = 10^6 bytes of body. The figures are in
//! docs/scanner.md.

use super::scan;
use std::hint::black_box;
use std::time::{Duration, Instant};

const PAGE_BYTES: usize = 10_000_000;
const RUNS: usize = 7;

/// A lead in the API's shape: strings with the odd escape and non-ASCII
/// letter, nulls, booleans, small numbers and a nested object.
fn lead(i: usize) -> String {
    const NAMES: &[&str] = &["Zoë", "O'Brien", "Nguyễn", "\\\"Quoted\\\"", "李", "Smith"];
    format!(
        r#"{{"id":"l_{i:08}","status":"active","bounced":{},"optedout":false,"creator_id":"u_{:04}","owner_id":null,"sent_count":{},"replied_count":{},"last_sent_at":"2026-0{}-1{}T13:20:05.000-07:00","data":{{"email":"lead{i}@example.com","first_name":"First{i}","last_name":"{}","company_name":"Company {}","address":null,"city":"Seattle","phone":"+1 555 {:04}","snippet":"Hi {{first_name}}, a line\nand a tab\t.","score":{}.{}}}}}"#,
        i % 13 == 0,
        i % 50,
        i % 7,
        i % 2,
        1 + i % 9,
        i % 10,
        NAMES[i % NAMES.len()],
        i % 97,
        i % 10_000,
        i % 1000,
        i % 100,
    )
}

/// A compact page of about `bytes` bytes, as the API sends it.
fn page(bytes: usize) -> (Vec<u8>, usize) {
    let mut body = String::from(
        r#"{"status":"success","errors":[],"has_more":true,"next_page":"https://api.persistiq.com/v1/leads?page=2","leads":["#,
    );
    let mut count = 0;
    while body.len() < bytes {
        if count > 0 {
            body.push(',');
        }
        body.push_str(&lead(count));
        count += 1;
    }
    body.push_str("]}");
    (body.into_bytes(), count)
}

fn best_of(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

#[test]
#[ignore = "a measurement: run it alone, with --ignored --nocapture"]
fn scan_of_a_10_mb_page() {
    let (body, count) = page(PAGE_BYTES);
    let mb = body.len() as f64 / 1e6;
    let layout = scan(&body, "leads", Some("last_sent_at")).unwrap();
    assert_eq!(layout.page(&body).records.len(), count);

    let ours = best_of(RUNS, || {
        black_box(scan(black_box(&body), "leads", Some("last_sent_at")).unwrap());
    });
    let reference = best_of(RUNS, || {
        black_box(serde_json::from_slice::<serde_json::Value>(black_box(&body)).unwrap());
    });
    let rate = |d: Duration| mb / d.as_secs_f64();
    println!(
        "page of {mb:.2} MB, {count} records, best of {RUNS}: scan {:.0} MB/s; serde_json Value \
         {:.0} MB/s; scan / serde_json = {:.1}",
        rate(ours),
        rate(reference),
        reference.as_secs_f64() / ours.as_secs_f64()
    );
}
