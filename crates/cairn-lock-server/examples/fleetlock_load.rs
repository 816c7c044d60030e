//! A FleetLock load generator: N concurrent clients, each on its own keep-alive connection,
//! each taking and giving back a reboot slot in a loop (`POST /v1/pre-reboot` then
//! `POST /v1/steady-state`, with its own id). Prints pairs per second and pair latency.
//!
//! ```text
//! cargo run --release -p cairn-lock-server --example fleetlock_load -- \
//!     --url http://127.0.0.1:8082 --clients 64 --seconds 10 [--group default]
//! ```
//!
//! The group needs at least as many slots as clients, or clients wait for each other (a 409 is
//! counted and retried, as an agent would).

use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;

struct Options {
    addr: String,
    clients: usize,
    seconds: f64,
    group: String,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        addr: "127.0.0.1:8082".into(),
        clients: 64,
        seconds: 10.0,
        group: "default".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => {
                options.addr = value
                    .strip_prefix("http://")
                    .ok_or("--url must be http://HOST:PORT")?
                    .trim_end_matches('/')
                    .to_string()
            }
            "--clients" => {
                options.clients = value.parse().map_err(|e| format!("--clients: {e}"))?
            }
            "--seconds" => {
                options.seconds = value.parse().map_err(|e| format!("--seconds: {e}"))?
            }
            "--group" => options.group = value,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if options.seconds.is_nan() || options.seconds <= 0.0 || options.clients == 0 {
        return Err("--seconds and --clients must be positive".into());
    }
    Ok(options)
}

#[derive(Default)]
struct Tally {
    pairs: u64,
    full: u64,
    errors: u64,
    latencies_us: Vec<u64>,
}

async fn client(
    addr: String,
    id: String,
    group: String,
    deadline: Instant,
) -> Result<Tally, String> {
    let stream = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let body =
        Bytes::from(serde_json::json!({"client_params": {"id": id, "group": group}}).to_string());
    let mut tally = Tally::default();
    let mut post = async |path: &str| -> Result<u16, String> {
        let request = Request::post(path)
            .header("host", addr.as_str())
            .header("fleet-lock-protocol", "true")
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        Ok(status)
    };
    while Instant::now() < deadline {
        let start = Instant::now();
        match post("/v1/pre-reboot").await? {
            200 => {}
            409 => {
                tally.full += 1;
                continue;
            }
            _ => {
                tally.errors += 1;
                continue;
            }
        }
        if post("/v1/steady-state").await? != 200 {
            tally.errors += 1;
            continue;
        }
        tally.pairs += 1;
        tally.latencies_us.push(start.elapsed().as_micros() as u64);
    }
    Ok(tally)
}

fn main() {
    let options = match options() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("fleetlock_load: {e}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(options.seconds);
    let tallies = runtime.block_on(async {
        let tasks: Vec<_> = (0..options.clients)
            .map(|n| {
                tokio::spawn(client(
                    options.addr.clone(),
                    format!("load-{n}"),
                    options.group.clone(),
                    deadline,
                ))
            })
            .collect();
        let mut tallies = Vec::new();
        for task in tasks {
            tallies.push(task.await);
        }
        tallies
    });
    let elapsed = start.elapsed().as_secs_f64();
    let mut total = Tally::default();
    for tally in tallies {
        match tally {
            Ok(Ok(tally)) => {
                total.pairs += tally.pairs;
                total.full += tally.full;
                total.errors += tally.errors;
                total.latencies_us.extend(tally.latencies_us);
            }
            Ok(Err(e)) => {
                eprintln!("client failed: {e}");
                total.errors += 1;
            }
            Err(e) => {
                eprintln!("client panicked: {e}");
                total.errors += 1;
            }
        }
    }
    total.latencies_us.sort_unstable();
    let percentile = |p: f64| {
        let n = total.latencies_us.len();
        if n == 0 {
            return 0.0;
        }
        total.latencies_us[((n as f64 * p) as usize).min(n - 1)] as f64 / 1000.0
    };
    println!(
        "clients={} seconds={elapsed:.1} pairs={} pairs_per_s={:.0} p50_ms={:.2} p99_ms={:.2} full={} errors={}",
        options.clients,
        total.pairs,
        total.pairs as f64 / elapsed,
        percentile(0.5),
        percentile(0.99),
        total.full,
        total.errors
    );
    if total.errors > 0 {
        std::process::exit(1);
    }
}
