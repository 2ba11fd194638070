//! Project automation, run as `cargo xtask <task>`.
//!
//! - `test`: the whole test suite (the README's test command; `.ci/run` runs it too), including
//!   the tests of off-by-default features such as `lucid-payouts/tron`.
//! - `ci`: what must pass before a change lands: format check, clippy with `-D warnings` on every
//!   target, `cargo check` per crate, the test suite, the slow simulations (`RUN_SLOW_TESTS=1`,
//!   release), docs with `-D warnings`, `cargo deny` (when installed), and compiling the benches.
//! - `load`: a closed-loop HTTP/1.1 load generator for loopback figures (`cargo xtask load
//!   --addr 127.0.0.1:8080 --path /health`); see `load.rs`.
//! - `join-fixture`: prepares the accepted pool-join figure against a running node (pools, then
//!   signed Join bodies for `load --bodies`); it runs the release `join-fixture` binary of
//!   `lucid-benches`, which signs pool ops, so that this crate stays free of Lucid crates.
//! - `codegen`: regenerates the committed gRPC code of `lucid-proto` from `proto/` (`protox` and
//!   `tonic-prost-build`, no system `protoc`); a test checks that the committed code is current.
//!
//! This crate depends on no Lucid crate; besides `anyhow` only the code generator and the load
//! generator's HTTP client.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod codegen;
mod load;
mod tidy;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            #[expect(clippy::print_stderr, reason = "xtask reports to the terminal")]
            {
                eprintln!("xtask: error: {error:#}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    let root = workspace_root();
    std::env::set_current_dir(&root)?;
    match task.as_str() {
        "test" => test(),
        "ci" => ci(),
        "load" => load::run(&std::env::args().skip(2).collect::<Vec<_>>()),
        "join-fixture" => {
            let rest: Vec<String> = std::env::args().skip(2).collect();
            let mut args = vec!["run", "--quiet", "--release", "-p", "lucid-benches"];
            args.extend(["--bin", "join-fixture", "--"]);
            args.extend(rest.iter().map(String::as_str));
            cargo(&args)
        }
        "codegen" => codegen::codegen(&root),
        _ => anyhow::bail!(
            "usage: cargo xtask <test|ci|load|join-fixture|codegen>\n  test     run the whole test suite\n  ci       fmt, clippy, check, test, doc, deny, bench --no-run\n  load     HTTP load generator (--addr, --path, --method, --connections, --seconds, --bodies, --expect)\n  join-fixture  pools and signed Join bodies for the accepted-join load figure (see benches/RESULTS.md)\n  codegen  regenerate crates/lucid-proto/src/gen from proto/"
        ),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn say(message: &str) {
    #[expect(clippy::print_stderr, reason = "xtask reports progress to the terminal")]
    {
        eprintln!("xtask: {message}");
    }
}

fn cargo(args: &[&str]) -> anyhow::Result<()> {
    cargo_with_env(args, &[])
}

fn cargo_with_env(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<()> {
    say(&format!("cargo {}", args.join(" ")));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo).args(args).envs(env.iter().copied()).status()?;
    anyhow::ensure!(status.success(), "`cargo {}` failed ({status})", args.join(" "));
    Ok(())
}

fn has_cargo_subcommand(name: &str) -> bool {
    Command::new("cargo")
        .args([name, "--version"])
        .output()
        .is_ok_and(|output| output.status.success())
}

/// Off-by-default features whose code and tests must still be built, linted and run, as
/// (package, feature). A workspace run with default features never compiles them.
/// The session suites need the fakes of `lucid-testkit/session` for the daemon's tests.
const FEATURE_SUITES: &[(&str, &str)] = &[
    ("lucid-payouts", "tron"),
    ("lucid-payouts", "session"),
    ("lucid-daemon", "tron"),
    ("lucid-daemon", "session"),
    ("lucid-daemon", "rdp"),
    ("lucid-testkit", "session"),
    ("lucid-storage", "session"),
    ("lucid-node", "blockchain"),
    ("lucid-node", "session"),
    ("lucid-node", "rdp"),
];

/// Every feature of [`FEATURE_SUITES`] as one `--features` value (`pkg/feature,…`).
fn suite_features() -> String {
    FEATURE_SUITES
        .iter()
        .map(|(package, feature)| format!("{package}/{feature}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The nextest filter of the feature run: the tests of the [`FEATURE_SUITES`] packages, minus
/// what the features cannot change, so CI does not run it twice:
/// - `lucid-testkit` only gains fakes with `session`; its own tests are the simulation;
/// - `lucid-storage` gains only the spent-txid registry, so only its `sessions` tests;
/// - the multi-process network tests of `lucid-node` use no optional integration.
fn suite_filter() -> String {
    let packages = FEATURE_SUITES
        .iter()
        .map(|(package, _)| *package)
        .filter(|package| !matches!(*package, "lucid-testkit" | "lucid-storage"))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|package| format!("package({package})"))
        .collect::<Vec<_>>()
        .join(" | ");
    format!(
        "({packages} | (package(lucid-storage) & test(/^sessions::/))) \
         - (package(lucid-node) & (test(/^network::/) | test(/^convergence::/) | test(/^restart::/)))"
    )
}

/// The whole suite: nextest when installed (parallel, per-test processes), else `cargo test`.
/// First the workspace with default features, then ONE more build with every feature of
/// [`FEATURE_SUITES`] on at once.
///
/// Why one build and why `--workspace`: cargo unifies the features of dependencies over the
/// packages selected for a build, so `-p lucid-daemon --features tron` alone resolves tokio,
/// serde, hyper and the rest with other feature sets than the workspace build and recompiles
/// the dependency tree, once per differently-featured `-p` run. Selecting the whole workspace
/// with the extra features keeps every shared dependency identical to the default build (only
/// the feature-gated crates, such as reqwest and k256, and the Lucid crates above
/// `lucid-payouts` are compiled again); nextest's filter then runs only the feature packages'
/// tests. Without nextest, `cargo test` cannot filter by package without changing the
/// selection, so it runs the whole workspace again.
fn test() -> anyhow::Result<()> {
    let features = suite_features();
    if has_cargo_subcommand("nextest") {
        cargo(&["nextest", "run", "--no-fail-fast", "--workspace"])?;
        let filter = suite_filter();
        cargo(&[
            "nextest",
            "run",
            "--no-fail-fast",
            "--workspace",
            "--features",
            &features,
            "-E",
            &filter,
        ])?;
    } else {
        say("cargo-nextest is not installed; running cargo test");
        cargo(&["test", "--no-fail-fast", "--workspace"])?;
        cargo(&["test", "--no-fail-fast", "--workspace", "--features", &features])?;
    }
    Ok(())
}

fn ci() -> anyhow::Result<()> {
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    let features = suite_features();
    cargo(&[
        "clippy",
        "--workspace",
        "--features",
        &features,
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    for package in tidy::workspace_packages()? {
        cargo(&["check", "--quiet", "-p", &package])?;
    }
    test()?;
    // Slow tests return early unless `RUN_SLOW_TESTS` is set (`lucid_testkit::skip_slow`); the
    // large simulations run here, in release, because a 1 000-node network verifies about a
    // million signatures per simulated slot.
    // `--nocapture`: each simulation prints its report (convergence after the heal, traffic per
    // node and slot), the figures issue 6 asks for, so they are in every CI log.
    cargo_with_env(
        &["test", "--release", "-p", "lucid-testkit", "--test", "sim", "--", "--nocapture"],
        &[("RUN_SLOW_TESTS", "1")],
    )?;
    cargo_with_env(
        &["doc", "--workspace", "--no-deps", "--document-private-items"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    cargo_with_env(
        &["doc", "--workspace", "--features", &features, "--no-deps", "--document-private-items"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    if has_cargo_subcommand("deny") {
        // Advisories need the RustSec database from the network, which CI machines may lack;
        // bans (duplicates, wrappers), licences and sources are checked offline.
        cargo(&["deny", "check", "bans", "licenses", "sources"])?;
    } else {
        say(
            "cargo-deny is not installed: skipping the dependency policy check (install it with `cargo install cargo-deny`)",
        );
    }
    cargo(&["bench", "-p", "lucid-benches", "--no-run"])?;
    say("ci: all checks passed");
    Ok(())
}
