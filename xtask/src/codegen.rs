//! `cargo xtask codegen`: regenerates `crates/lucid-proto/src/gen/` from `proto/` with `protox`
//! (a protobuf compiler in Rust, so no system `protoc`) and `tonic-prost-build`.
//!
//! The generated code is committed (house style H16); the test below regenerates it into a
//! temporary directory and fails on any difference, so the committed code cannot drift.

use std::path::Path;

use anyhow::Context as _;

/// The `.proto` files, relative to the `proto/` include root.
pub(crate) const PROTO_FILES: &[&str] =
    &["lucid/node/v1/common.proto", "lucid/node/v1/operator.proto", "lucid/node/v1/peer.proto"];

/// Where the generated code is committed, relative to the workspace root.
pub(crate) const GEN_DIR: &str = "crates/lucid-proto/src/gen";

/// Compiles the `.proto` files under `root/proto` and writes the Rust code into `out_dir`.
pub(crate) fn generate(root: &Path, out_dir: &Path) -> anyhow::Result<()> {
    let include = root.join("proto");
    let files: Vec<_> = PROTO_FILES.iter().map(|file| include.join(file)).collect();
    let descriptors = protox::compile(&files, [&include])
        .map_err(|e| anyhow::anyhow!("compiling the .proto files: {e}"))?;
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .build_transport(true)
        .emit_rerun_if_changed(false)
        .out_dir(out_dir)
        .compile_fds(descriptors)
        .context("generating Rust code from the descriptors")?;
    Ok(())
}

/// Regenerates the committed code in place.
pub(crate) fn codegen(root: &Path) -> anyhow::Result<()> {
    generate(root, &root.join(GEN_DIR))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                (
                    entry.file_name().to_string_lossy().into_owned(),
                    std::fs::read(entry.path()).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    }

    #[test]
    fn committed_code_is_what_the_proto_files_generate() {
        let root = crate::workspace_root();
        let fresh = tempfile::tempdir().unwrap();
        generate(&root, fresh.path()).unwrap();
        let committed = files_of(&root.join(GEN_DIR));
        let regenerated = files_of(fresh.path());
        let names = |files: &[(String, Vec<u8>)]| -> Vec<String> {
            files.iter().map(|(name, _)| name.clone()).collect()
        };
        assert_eq!(names(&committed), names(&regenerated), "run `cargo xtask codegen`");
        for ((name, committed), (_, regenerated)) in committed.iter().zip(&regenerated) {
            assert!(
                committed == regenerated,
                "{GEN_DIR}/{name} differs from what proto/ generates: run `cargo xtask codegen`"
            );
        }
    }
}
