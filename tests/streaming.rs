//! Bodies stream through the gateway in bounded memory: a 2 GiB upload and a 2 GiB download,
//! generated on the fly, while the process's resident memory is sampled. This file is its own
//! test binary so no other test shares the process being measured.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use http::{Request, StatusCode};
use http_body_util::BodyExt;

const SIZE: u64 = 2 << 30;
/// What the transfers may add to the resident set: a few MiB of buffers per connection, far
/// below what buffering any of the 2 GiB would take.
const BOUND: u64 = 64 << 20;

fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// Samples the resident set every 10 ms until stopped; returns the peak.
fn sample_peak() -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = std::thread::spawn(move || {
        let mut peak = 0;
        while !flag.load(Ordering::Relaxed) {
            peak = peak.max(resident_bytes());
            std::thread::sleep(Duration::from_millis(10));
        }
        peak
    });
    (stop, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gib_up_and_down_in_bounded_memory() {
    let upstream = common::upstream().await;
    let gateway = common::start(common::config(
        upstream.addr,
        "[access]\npublic_paths = [\"/\"]\n",
    ))
    .await;
    let client = common::client();
    // Warm up the pools and allocator so the baseline includes steady-state buffers.
    let (status, _, _) = common::get(&gateway.url("/download/1048576")).await;
    assert_eq!(status, StatusCode::OK);

    let baseline = resident_bytes();
    let (stop, sampler) = sample_peak();

    let upload = Request::post(gateway.url("/upload"))
        .body(common::generated(SIZE))
        .expect("request");
    let (status, _, body) = common::send(&client, upload).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        String::from_utf8_lossy(&body),
        SIZE.to_string(),
        "the upstream received every byte"
    );

    let download = Request::get(gateway.url(&format!("/download/{SIZE}")))
        .body(common::full(""))
        .expect("request");
    let response = client.request(download).await.expect("download starts");
    assert_eq!(response.status(), StatusCode::OK);
    let received = AtomicU64::new(0);
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("download continues");
        if let Some(data) = frame.data_ref() {
            received.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
    }
    assert_eq!(
        received.load(Ordering::Relaxed),
        SIZE,
        "the client received every byte"
    );

    stop.store(true, Ordering::Relaxed);
    let peak = sampler.join().expect("sampler");
    let grown = peak.saturating_sub(baseline);
    println!(
        "baseline {} MiB, peak {} MiB, grown {} MiB for 2 x {} MiB streamed",
        baseline >> 20,
        peak >> 20,
        grown >> 20,
        SIZE >> 20
    );
    assert!(
        grown < BOUND,
        "resident memory grew by {} MiB while streaming",
        grown >> 20
    );
    gateway.shutdown().await;
}
