//! `cargo xtask load`: a small closed-loop HTTP/1.1 load generator for loopback measurements
//! (`wrk` is not installed here). Each of `--connections` threads keeps one connection alive,
//! sends the request, reads the whole response, and records the latency; the report gives the
//! request rate, latency percentiles and the status counts.
//!
//! It speaks just enough HTTP/1.1 for the node's answers: a status line, headers and a body of
//! `Content-Length` bytes. Anything else is counted as an error and the connection reopened.
//!
//! With `--bodies FILE` the run sends each line of the file once as a body, in file order across
//! all connections (for requests that may succeed only once, such as signed pool joins). A run
//! fails (non-zero exit, after the report) when it runs out of bodies before its time is up, when
//! any answer has a status outside `--expect` (default: any 2xx), or when a request got no answer.
#![expect(
    clippy::disallowed_methods,
    reason = "a load generator measures real latency, so it reads the real monotonic clock"
)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What to send, how hard and for how long.
#[derive(Debug)]
struct Plan {
    addr: SocketAddr,
    method: String,
    path: String,
    headers: Vec<String>,
    body: Vec<u8>,
    /// One body per request, each sent once (`--bodies`); empty: `body` on every request.
    bodies: Vec<Vec<u8>>,
    /// The statuses that count as success; empty: any 2xx.
    expect: Vec<u16>,
    connections: usize,
    duration: Duration,
}

impl Plan {
    fn expected(&self, status: u16) -> bool {
        if self.expect.is_empty() {
            (200..300).contains(&status)
        } else {
            self.expect.contains(&status)
        }
    }
}

const USAGE: &str = "usage: cargo xtask load --addr HOST:PORT [--path /health] [--method GET] \
[--connections 32] [--seconds 10] [--header 'Name: value']... [--token-file FILE] [--body TEXT] \
[--bodies FILE (one body per line, each sent once)] [--expect 202[,409]]";

fn plan(args: &[String]) -> anyhow::Result<Plan> {
    let mut plan = Plan {
        addr: "127.0.0.1:8080".parse()?,
        method: "GET".to_owned(),
        path: "/health".to_owned(),
        headers: Vec::new(),
        body: Vec::new(),
        bodies: Vec::new(),
        expect: Vec::new(),
        connections: 32,
        duration: Duration::from_secs(10),
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value =
            || args.next().ok_or_else(|| anyhow::anyhow!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--addr" => plan.addr = value()?.parse()?,
            "--path" => plan.path = value()?.clone(),
            "--method" => plan.method = value()?.to_uppercase(),
            "--connections" => plan.connections = value()?.parse()?,
            "--seconds" => plan.duration = Duration::from_secs(value()?.parse()?),
            "--header" => plan.headers.push(value()?.clone()),
            "--body" => plan.body = value()?.as_bytes().to_vec(),
            "--bodies" => {
                let path = value()?;
                let text = std::fs::read_to_string(path)
                    .map_err(|error| anyhow::anyhow!("reading {path}: {error}"))?;
                plan.bodies = text
                    .lines()
                    .filter(|line| !line.trim().is_empty())
                    .map(|line| line.as_bytes().to_vec())
                    .collect();
                anyhow::ensure!(!plan.bodies.is_empty(), "{path} holds no bodies");
            }
            "--expect" => {
                plan.expect = value()?
                    .split(',')
                    .map(|status| status.trim().parse::<u16>())
                    .collect::<Result<_, _>>()?;
            }
            "--token-file" => {
                let token = std::fs::read_to_string(value()?)?;
                plan.headers.push(format!("Authorization: Bearer {}", token.trim()));
            }
            other => anyhow::bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    anyhow::ensure!(plan.connections > 0, "--connections must be positive");
    anyhow::ensure!(
        plan.bodies.is_empty() || plan.body.is_empty(),
        "--body and --bodies exclude each other"
    );
    Ok(plan)
}

fn request_bytes(plan: &Plan, body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
        plan.method,
        plan.path,
        plan.addr,
        body.len()
    );
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    for header in &plan.headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// The requests of a run: one per body of `--bodies`, else the one request sent again and again.
enum Requests {
    Repeated(Vec<u8>),
    /// Each request once; `next` counts every take, so a count past the end means a worker
    /// found none left.
    Once {
        requests: Vec<Vec<u8>>,
        next: AtomicUsize,
    },
}

impl Requests {
    fn of(plan: &Plan) -> Requests {
        if plan.bodies.is_empty() {
            Requests::Repeated(request_bytes(plan, &plan.body))
        } else {
            Requests::Once {
                requests: plan.bodies.iter().map(|body| request_bytes(plan, body)).collect(),
                next: AtomicUsize::new(0),
            }
        }
    }

    /// The next request to send; `None` once every body was sent.
    fn next(&self) -> Option<&[u8]> {
        match self {
            Requests::Repeated(request) => Some(request),
            Requests::Once { requests, next } => {
                requests.get(next.fetch_add(1, Ordering::Relaxed)).map(Vec::as_slice)
            }
        }
    }

    fn ran_out(&self) -> bool {
        matches!(self, Requests::Once { requests, next } if next.load(Ordering::Relaxed) > requests.len())
    }

    /// Bodies sent (`None` for a repeated request).
    fn sent(&self) -> Option<(usize, usize)> {
        match self {
            Requests::Repeated(_) => None,
            Requests::Once { requests, next } => {
                Some((next.load(Ordering::Relaxed).min(requests.len()), requests.len()))
            }
        }
    }
}

/// Reads one response; its status.
fn read_response(reader: &mut BufReader<TcpStream>) -> anyhow::Result<u16> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status: u16 = line.get(9..12).ok_or_else(|| anyhow::anyhow!("no status line"))?.parse()?;
    let mut length = 0usize;
    loop {
        line.clear();
        anyhow::ensure!(reader.read_line(&mut line)? > 0, "connection closed in the headers");
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse()?;
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    Ok(status)
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
}

fn worker(plan: &Plan, requests: &Requests, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut connection: Option<(TcpStream, BufReader<TcpStream>)> = None;
    while Instant::now() < deadline {
        if connection.is_none() {
            let opened = TcpStream::connect(plan.addr).and_then(|stream| {
                stream.set_nodelay(true)?;
                let reader = BufReader::new(stream.try_clone()?);
                Ok((stream, reader))
            });
            match opened {
                Ok(pair) => connection = Some(pair),
                Err(_) => {
                    tally.errors += 1;
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            }
        }
        let Some((stream, reader)) = connection.as_mut() else { continue };
        let Some(request) = requests.next() else { break };
        let start = Instant::now();
        let answered = stream
            .write_all(request)
            .map_err(anyhow::Error::from)
            .and_then(|()| read_response(reader));
        match answered {
            Ok(status) => {
                let micros = u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX);
                tally.latencies_us.push(micros);
                *tally.statuses.entry(status).or_insert(0) += 1;
            }
            Err(_) => {
                tally.errors += 1;
                connection = None;
            }
        }
    }
    tally
}

fn percentile(sorted: &[u32], per_mille: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = (sorted.len() * per_mille).div_ceil(1000).saturating_sub(1).min(sorted.len() - 1);
    f64::from(sorted[index]) / 1000.0
}

/// Runs the load and prints the report.
pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let plan = plan(args)?;
    let requests = Requests::of(&plan);
    let started = Instant::now();
    let deadline = started + plan.duration;
    let tallies: Vec<Tally> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..plan.connections)
            .map(|_| scope.spawn(|| worker(&plan, &requests, deadline)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies: Vec<u32> = Vec::new();
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let mut errors = 0;
    for tally in tallies {
        latencies.extend(tally.latencies_us);
        for (status, count) in tally.statuses {
            *statuses.entry(status).or_insert(0) += count;
        }
        errors += tally.errors;
    }
    latencies.sort_unstable();
    let completed = latencies.len();
    #[expect(clippy::print_stdout, reason = "the report is the task's output")]
    {
        println!(
            "{} {} on {} with {} connections for {:.1} s",
            plan.method, plan.path, plan.addr, plan.connections, elapsed
        );
        println!("requests: {completed} ({:.0}/s), errors: {errors}", completed as f64 / elapsed);
        println!(
            "latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            percentile(&latencies, 500),
            percentile(&latencies, 900),
            percentile(&latencies, 990),
            percentile(&latencies, 999),
            percentile(&latencies, 1000)
        );
        println!("statuses: {statuses:?}");
        if let Some((sent, total)) = requests.sent() {
            println!("bodies sent: {sent} of {total}");
        }
    }
    let unexpected: BTreeMap<u16, u64> = statuses
        .iter()
        .filter(|(status, _)| !plan.expected(**status))
        .map(|(s, c)| (*s, *c))
        .collect();
    anyhow::ensure!(unexpected.is_empty(), "unexpected statuses: {unexpected:?}");
    anyhow::ensure!(
        !requests.ran_out(),
        "the run ran out of bodies before its {:?} were up: give more bodies or fewer seconds",
        plan.duration
    );
    anyhow::ensure!(errors == 0, "{errors} requests got no answer");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let sorted: Vec<u32> = (1..=1000).collect();
        assert_eq!(percentile(&sorted, 500), 0.5);
        assert_eq!(percentile(&sorted, 990), 0.99);
        assert_eq!(percentile(&sorted, 1000), 1.0);
        assert_eq!(percentile(&[], 990), 0.0);
    }

    #[test]
    fn arguments_are_parsed_and_unknown_ones_refused() {
        let args: Vec<String> =
            ["--addr", "127.0.0.1:9", "--method", "post", "--header", "X: y", "--connections", "4"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
        let parsed = plan(&args).unwrap();
        assert_eq!((parsed.method.as_str(), parsed.connections), ("POST", 4));
        let bytes = String::from_utf8(request_bytes(&parsed, &parsed.body)).unwrap();
        assert!(bytes.starts_with("POST /health HTTP/1.1\r\n") && bytes.contains("X: y\r\n"));
        assert!(plan(&["--frobnicate".to_owned()]).is_err());
        assert!(plan(&["--expect".to_owned(), "20x".to_owned()]).is_err());
        assert!(plan(&["--connections".to_owned(), "0".to_owned()]).is_err());
    }

    /// A loopback server answering each request 202, or 409 when its body says `refuse`; the
    /// bodies it received.
    fn server() -> (SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = std::sync::Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let record = std::sync::Arc::clone(&record);
                std::thread::spawn(move || serve(stream, &record));
            }
        });
        (addr, seen)
    }

    fn serve(mut stream: TcpStream, seen: &std::sync::Mutex<Vec<String>>) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        loop {
            let mut length = 0usize;
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                if line.trim_end().is_empty() {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap();
                }
            }
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body).unwrap();
            let body = String::from_utf8(body).unwrap();
            let status = if body.contains("refuse") { "409 Conflict" } else { "202 Accepted" };
            seen.lock().unwrap().push(body);
            let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\n\r\n{{}}");
            if stream.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    }

    fn run_with_bodies(addr: SocketAddr, bodies: &str) -> anyhow::Result<()> {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bodies).unwrap();
        let args: Vec<String> = [
            "--addr",
            &addr.to_string(),
            "--method",
            "POST",
            "--path",
            "/api/v1/pools/ops",
            "--connections",
            "3",
            "--seconds",
            "600",
            "--bodies",
            file.path().to_str().unwrap(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        run(&args)
    }

    /// Each body goes out exactly once; a run that used them all before its time was up fails
    /// loudly (it would otherwise report a rate over fewer seconds than asked), and so does one
    /// with an answer outside the expected statuses.
    #[test]
    fn bodies_are_sent_once_each_and_running_out_or_a_refusal_fails_the_run() {
        let (addr, seen) = server();
        let bodies: Vec<String> = (0..50).map(|i| format!("{{\"join\":{i}}}")).collect();
        let error = run_with_bodies(addr, &bodies.join("\n")).unwrap_err();
        assert!(error.to_string().contains("ran out of bodies"), "{error}");
        let mut received = seen.lock().unwrap().clone();
        received.sort();
        let mut expected = bodies.clone();
        expected.sort();
        assert_eq!(received, expected);
        let error = run_with_bodies(addr, "{\"ok\":1}\n{\"refuse\":2}\n").unwrap_err();
        assert!(error.to_string().contains("unexpected statuses: {409: 1}"), "{error}");
        assert!(run_with_bodies(addr, "\n\n").unwrap_err().to_string().contains("no bodies"));
    }
}
