//! `join-fixture`: prepares the data of the accepted pool-join load figure against a running node
//! (`benches/RESULTS.md` gives the commands; `cargo xtask join-fixture` runs this binary).
//!
//! - `pools --addr A --count P --out FILE`: P fresh founder keys each submit a signed Create
//!   (`POST /api/v1/pools/ops`, every answer must be 202); the pool ids go to FILE, one a line.
//!   The pools exist once their Creates take effect, three slots later: `wait` checks that.
//! - `wait --addr A --pools FILE`: polls until every pool of FILE has its founder's seat.
//! - `joins --addr A --pools FILE --count N --out FILE`: N fresh member keys each sign one Join,
//!   spread over the pools of FILE so that none overflows (each pool's room is read from the node:
//!   `max_nodes - seats - pending_joins`); the bodies go to FILE, one JSON body a line, for
//!   `cargo xtask load --bodies`. The Joins are signed for the node's current slot, so they are
//!   accepted during this slot and the next: run the load right after.
//!
//! Keys are derived from a per-run nonce (the node's current slot start, the process id and a
//! counter), never reused across runs. Talks HTTP/1.1 over loopback with `Connection: close`, one request at a
//! time: preparation is not measured.

use std::error::Error;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use lucid_core::message::Message as _;
use lucid_core::{NetworkId, NodeKey, PoolId, Slot, UnixMillis};
use lucid_pools::{Op, PoolOp};
use serde_json::Value;

type Failed = Box<dyn Error + Send + Sync>;

const USAGE: &str = "usage: join-fixture pools --addr HOST:PORT --count P --out FILE\n       \
join-fixture wait --addr HOST:PORT --pools FILE\n       \
join-fixture joins --addr HOST:PORT --pools FILE --count N --out FILE";

/// How long `wait` polls before it gives up.
const WAIT_AT_MOST: Duration = Duration::from_secs(600);

fn main() -> std::process::ExitCode {
    match run(&std::env::args().skip(1).collect::<Vec<_>>()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            #[expect(clippy::print_stderr, reason = "a command-line tool reports to the terminal")]
            {
                eprintln!("join-fixture: {error}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// The flags of one invocation.
#[derive(Default)]
struct Args {
    addr: Option<SocketAddr>,
    count: usize,
    out: Option<String>,
    pools: Option<String>,
}

fn parse(args: &[String]) -> Result<Args, Failed> {
    let mut parsed = Args::default();
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--addr" => parsed.addr = Some(value.parse()?),
            "--count" => parsed.count = value.parse()?,
            "--out" => parsed.out = Some(value.clone()),
            "--pools" => parsed.pools = Some(value.clone()),
            other => return Err(format!("unknown argument {other}\n{USAGE}").into()),
        }
    }
    Ok(parsed)
}

fn run(args: &[String]) -> Result<(), Failed> {
    let (command, rest) = args.split_first().ok_or(USAGE)?;
    let args = parse(rest)?;
    let addr = args.addr.ok_or_else(|| format!("--addr is required\n{USAGE}"))?;
    match command.as_str() {
        "pools" => {
            let out = args.out.ok_or("--out is required")?;
            create_pools(addr, args.count, &out)
        }
        "wait" => wait_for_pools(addr, &read_pools(args.pools.as_deref())?),
        "joins" => {
            let out = args.out.ok_or("--out is required")?;
            write_joins(addr, &read_pools(args.pools.as_deref())?, args.count, &out)
        }
        _ => Err(USAGE.into()),
    }
}

fn read_pools(path: Option<&str>) -> Result<Vec<PoolId>, Failed> {
    let path = path.ok_or("--pools is required")?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?;
    let pools = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.trim().parse::<PoolId>())
        .collect::<Result<Vec<_>, _>>()?;
    if pools.is_empty() {
        return Err(format!("{path} holds no pool ids").into());
    }
    Ok(pools)
}

/// The node's network and current slot (with its start, which the ops carry as their time).
struct NodeClock {
    network: NetworkId,
    slot: Slot,
    slot_start: UnixMillis,
}

fn node_clock(addr: SocketAddr) -> Result<NodeClock, Failed> {
    let clock = get_json(addr, "/api/v1/poot/clock")?;
    let network = clock["network_id"].as_str().ok_or("clock without network_id")?.parse()?;
    let slot = clock["slot"].as_u64().ok_or("the node's network has no current slot yet")?;
    let start = clock["slot_start_ms"].as_i64().ok_or("clock without slot_start_ms")?;
    Ok(NodeClock { network, slot: Slot(slot), slot_start: UnixMillis(start) })
}

/// The `index`-th key of the run `nonce` for `role`. Fresh per run: the nonce is a slot start,
/// and the process id tells apart two runs in the same slot (a second `joins` run signed in the
/// slot of the first would otherwise repeat its keys, which the node refuses as already joined).
fn fresh_key(role: u8, nonce: i64, index: usize) -> NodeKey {
    let mut seed = [0u8; 32];
    seed[0] = role;
    seed[1..9].copy_from_slice(&nonce.to_le_bytes());
    seed[9..17].copy_from_slice(&(index as u64).to_le_bytes());
    seed[17..21].copy_from_slice(&std::process::id().to_le_bytes());
    seed[21..].copy_from_slice(b"lucid-joins");
    NodeKey::from_seed(&seed)
}

/// The JSON body of `POST /api/v1/pools/ops` for `op`, signed by `key`.
fn signed_body(clock: &NodeClock, key: &NodeKey, op: Op) -> String {
    let pool_op = PoolOp { node: key.node_id(), slot: clock.slot, ts: clock.slot_start, op };
    let signed = pool_op.sign(&clock.network, key);
    serde_json::json!({
        "message": signed.message_base64(),
        "signature": signed.signature().to_hex(),
    })
    .to_string()
}

fn create_pools(addr: SocketAddr, count: usize, out: &str) -> Result<(), Failed> {
    let clock = node_clock(addr)?;
    let mut ids = String::new();
    for index in 0..count {
        let key = fresh_key(b'c', clock.slot_start.0, index);
        let name = format!("load-{}-{index}", clock.slot.0);
        let body = signed_body(&clock, &key, Op::Create { name, max_nodes: 100 });
        let (status, reply) = request(addr, "POST", "/api/v1/pools/ops", body.as_bytes())?;
        if status != 202 {
            return Err(format!("Create {index} answered {status}: {reply}").into());
        }
        let reply: Value = serde_json::from_str(&reply)?;
        ids.push_str(reply["pool_id"].as_str().ok_or("a 202 without pool_id")?);
        ids.push('\n');
    }
    std::fs::write(out, ids)?;
    report(&format!("{count} Creates accepted in slot {}; pool ids in {out}", clock.slot.0));
    Ok(())
}

/// Seats and waiting joins of `pool`, `None` while it does not exist.
fn pool_room(addr: SocketAddr, pool: &PoolId) -> Result<Option<u64>, Failed> {
    let (status, body) = request(addr, "GET", &format!("/api/v1/pools/{pool}"), b"")?;
    match status {
        404 => Ok(None),
        200 => {
            let view: Value = serde_json::from_str(&body)?;
            let field = |name: &str| view[name].as_u64().ok_or(format!("pool view without {name}"));
            let taken = field("seats")?.saturating_add(field("pending_joins")?);
            Ok(Some(field("max_nodes")?.saturating_sub(taken)))
        }
        other => Err(format!("GET pool {pool} answered {other}: {body}").into()),
    }
}

fn wait_for_pools(addr: SocketAddr, pools: &[PoolId]) -> Result<(), Failed> {
    let mut waited = Duration::ZERO;
    let step = Duration::from_millis(500);
    for pool in pools {
        while pool_room(addr, pool)?.is_none() {
            if waited >= WAIT_AT_MOST {
                return Err(format!("pool {pool} still missing after {WAIT_AT_MOST:?}").into());
            }
            std::thread::sleep(step);
            waited += step;
        }
    }
    report(&format!("all {} pools exist", pools.len()));
    Ok(())
}

fn write_joins(addr: SocketAddr, pools: &[PoolId], count: usize, out: &str) -> Result<(), Failed> {
    let clock = node_clock(addr)?;
    let mut bodies = String::new();
    let mut written = 0usize;
    for pool in pools {
        if written == count {
            break;
        }
        let room = pool_room(addr, pool)?.ok_or_else(|| format!("pool {pool} does not exist"))?;
        let take = usize::try_from(room).unwrap_or(usize::MAX).min(count - written);
        for _ in 0..take {
            let key = fresh_key(b'j', clock.slot_start.0, written);
            bodies.push_str(&signed_body(&clock, &key, Op::Join { pool: *pool }));
            bodies.push('\n');
            written += 1;
        }
    }
    if written < count {
        return Err(format!("the pools have room for {written} joins only, not {count}").into());
    }
    std::fs::write(out, bodies)?;
    report(&format!(
        "{count} Joins signed for slot {} (accepted during it and the next); bodies in {out}",
        clock.slot.0
    ));
    Ok(())
}

fn report(line: &str) {
    #[expect(clippy::print_stdout, reason = "the tool's report is its output")]
    {
        println!("{line}");
    }
}

fn get_json(addr: SocketAddr, path: &str) -> Result<Value, Failed> {
    let (status, body) = request(addr, "GET", path, b"")?;
    if status != 200 {
        return Err(format!("GET {path} answered {status}: {body}").into());
    }
    Ok(serde_json::from_str(&body)?)
}

/// One HTTP/1.1 request with `Connection: close`; the status and the body.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<(u16, String), Failed> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let answer = String::from_utf8(answer)?;
    let status = answer.get(9..12).ok_or("no status line")?.parse()?;
    let body = answer.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    Ok((status, body))
}
