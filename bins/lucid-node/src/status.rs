//! `lucid-node status`: asks the running node over gRPC (`Operator.GetStatus` and
//! `Operator.GetBalance` of the node itself, with the admin token from the data directory) and
//! prints a summary, or JSON with `--json`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use lucid_api::grpc::{connect, operator_client, pb};

/// How long `status` waits for the node to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// Asks the node at `addr` (an unspecified IP means this machine) and prints its status.
pub(crate) fn run(mut addr: SocketAddr, token: &str, json: bool) -> anyhow::Result<ExitCode> {
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (status, balance) = runtime.block_on(async {
        let channel = connect(addr).await.with_context(|| {
            format!("cannot reach the node's gRPC API at {addr} (is `lucid-node run` running?)")
        })?;
        let mut client = operator_client(channel, token)?;
        let late = || anyhow::anyhow!("the node at {addr} did not answer within {ANSWER_WITHIN:?}");
        let status =
            tokio::time::timeout(ANSWER_WITHIN, client.get_status(pb::GetStatusRequest {}))
                .await
                .map_err(|_| late())?
                .map_err(|status| {
                    anyhow::anyhow!("the node at {addr} refused GetStatus: {}", status.message())
                })?
                .into_inner();
        // The node's own balance (an empty node id names the node itself).
        let balance = tokio::time::timeout(
            ANSWER_WITHIN,
            client.get_balance(pb::GetBalanceRequest { node_id: String::new() }),
        )
        .await
        .map_err(|_| late())?
        .map_err(|status| {
            anyhow::anyhow!("the node at {addr} refused GetBalance: {}", status.message())
        })?
        .into_inner();
        anyhow::Ok((status, balance))
    })?;
    #[expect(clippy::print_stdout, reason = "status prints its answer on stdout")]
    {
        if json {
            println!("{}", serde_json::to_string_pretty(&to_json(&status, &balance))?);
        } else {
            print!("{}", summary(&status, &balance));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn to_json(status: &pb::GetStatusResponse, balance: &pb::GetBalanceResponse) -> serde_json::Value {
    let components: serde_json::Map<String, serde_json::Value> = status
        .components
        .iter()
        .map(|c| (c.name.clone(), serde_json::json!({ "status": c.status, "detail": c.detail })))
        .collect();
    serde_json::json!({
        "node_id": status.node_id,
        "version": status.version,
        "network": status.network,
        "ready": status.ready,
        "health": status.health,
        "slot": status.slot,
        "epoch": status.epoch,
        "uptime_s": status.uptime_s,
        "registered_nodes": status.registered_nodes,
        "components": components,
        "balance": {
            "earned": balance.earned_usdt,
            "available": balance.available_usdt,
            "reserved": balance.reserved_usdt,
            "paid": balance.paid_usdt,
            "minimum": balance.minimum_usdt,
            "authoritative": balance.authoritative,
        },
    })
}

/// The human summary: one `key: value` line each, components indented.
fn summary(status: &pb::GetStatusResponse, balance: &pb::GetBalanceResponse) -> String {
    use std::fmt::Write as _;
    let or_dash = |value: Option<u64>| value.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let mut out = String::new();
    let _ = writeln!(out, "node_id: {}", status.node_id);
    let _ = writeln!(out, "network: {}", status.network);
    let _ = writeln!(out, "version: {}", status.version);
    let _ = writeln!(out, "ready: {}", if status.ready { "yes" } else { "no" });
    let _ = writeln!(out, "health: {}", status.health);
    let _ = writeln!(out, "slot: {}", or_dash(status.slot));
    let _ = writeln!(out, "epoch: {}", or_dash(status.epoch));
    let _ = writeln!(out, "uptime_s: {}", status.uptime_s);
    let _ = writeln!(out, "registered_nodes: {}", status.registered_nodes);
    let _ = writeln!(out, "components:");
    for component in &status.components {
        let _ = writeln!(out, "  {}: {} ({})", component.name, component.status, component.detail);
    }
    // Reserved and paid are the payer's figures only on the payer (pools-payouts.md §5.1).
    let _ = writeln!(
        out,
        "balance: earned {} / available {} / reserved {} / paid {} USDT{}",
        balance.earned_usdt,
        balance.available_usdt,
        balance.reserved_usdt,
        balance.paid_usdt,
        if balance.authoritative { "" } else { " (not authoritative: this node is not the payer)" }
    );
    out
}
