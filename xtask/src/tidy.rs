//! Tidy checks of the workspace conventions, run as ordinary tests (`cargo test -p xtask`):
//! every Rust file opens with a `//!` doc, every manifest inherits the workspace lints and
//! package fields, domain crates stay free of async runtimes and I/O libraries, the money paths
//! stay free of floats, and `ARCHITECTURE.md` names every crate.

use std::fs;
use std::path::{Path, PathBuf};

/// Crates that must stay synchronous and free of I/O libraries (house style H4).
#[cfg(test)]
const DOMAIN_CRATES: &[&str] =
    &["lucid-core", "lucid-consensus", "lucid-pools", "lucid-payouts", "lucid-shards"];
/// Dependencies a domain crate must not have (outside named feature exceptions).
#[cfg(test)]
const FORBIDDEN_IN_DOMAIN: &[&str] =
    &["tokio", "sqlx", "tonic", "prost", "axum", "reqwest", "hyper"];
/// Crates where money lives: no float types at all.
#[cfg(test)]
const MONEY_CRATES: &[&str] = &["lucid-pools", "lucid-payouts"];

/// Package names of the workspace members, from the member directories.
pub(crate) fn workspace_packages() -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for dir in member_dirs()? {
        let manifest = fs::read_to_string(dir.join("Cargo.toml"))?;
        let name = manifest
            .lines()
            .find_map(|line| line.strip_prefix("name = \""))
            .and_then(|rest| rest.strip_suffix('"'))
            .ok_or_else(|| anyhow::anyhow!("{} has no package name", dir.display()))?;
        names.push(name.to_owned());
    }
    Ok(names)
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn member_dirs() -> anyhow::Result<Vec<PathBuf>> {
    let manifest = fs::read_to_string(root().join("Cargo.toml"))?;
    let members = manifest
        .split("members = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .ok_or_else(|| anyhow::anyhow!("root Cargo.toml has no members list"))?;
    Ok(members
        .lines()
        .map(str::trim)
        .filter_map(|line| line.strip_prefix('"'))
        .filter_map(|line| line.split('"').next())
        .map(|member| root().join(member))
        .collect())
}

#[cfg(test)]
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|name| name != "target") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rust_file_opens_with_a_module_doc() {
        let mut files = Vec::new();
        for dir in member_dirs().unwrap() {
            rust_files(&dir, &mut files);
        }
        assert!(files.len() > 10, "found only {} files", files.len());
        let missing: Vec<_> = files
            .iter()
            .filter(|file| {
                let text = fs::read_to_string(file).unwrap();
                // Generated code (lucid-proto's `src/gen/`) is included with `include!`, where an
                // inner doc comment is not allowed; its including module carries the doc.
                !text.starts_with("//!") && !text.starts_with("// This file is @generated")
            })
            .collect();
        assert!(missing.is_empty(), "files without a leading //! doc: {missing:#?}");
    }

    #[test]
    fn manifests_follow_the_conventions() {
        for dir in member_dirs().unwrap() {
            let manifest = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
            let name = dir.display();
            assert!(
                manifest.contains("[lints]\nworkspace = true"),
                "{name}: [lints] workspace = true"
            );
            assert!(manifest.contains("version.workspace = true"), "{name}: version.workspace");
            assert!(manifest.contains("edition.workspace = true"), "{name}: edition.workspace");
            assert!(manifest.contains("publish.workspace = true"), "{name}: publish.workspace");
            // Every dependency comes from [workspace.dependencies].
            for line in manifest.lines() {
                let line = line.trim();
                if line.contains("version = \"") && !line.starts_with("version") {
                    panic!("{name}: dependency with its own version: {line}");
                }
            }
        }
    }

    #[test]
    fn members_are_in_dependency_order() {
        let dirs = member_dirs().unwrap();
        let names = workspace_packages().unwrap();
        for (index, dir) in dirs.iter().enumerate() {
            let manifest = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
            for later in &names[index + 1..] {
                // `lucid-testkit` is a dev-dependency only (house style H19) and may depend on
                // the crates whose integration tests use it: that edge is the one allowed
                // dev-dependency cycle, so only a dev-dependency on it may point forward.
                let manifest = if later == "lucid-testkit" {
                    manifest.split("[dev-dependencies]").next().unwrap_or_default()
                } else {
                    manifest.as_str()
                };
                let edge = format!("\n{later}.workspace = true");
                let edge_table = format!("\n{later} = {{ workspace = true");
                assert!(
                    !manifest.contains(&edge) && !manifest.contains(&edge_table),
                    "{} depends on {later}, which is listed after it",
                    names[index]
                );
            }
        }
    }

    #[test]
    fn domain_crates_stay_free_of_io_libraries() {
        for dir in member_dirs().unwrap() {
            let manifest = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
            let name = dir.file_name().unwrap().to_string_lossy().to_string();
            if !DOMAIN_CRATES.contains(&name.as_str()) {
                continue;
            }
            let dependencies = manifest.split("[dependencies]").nth(1).unwrap_or_default();
            let dependencies = dependencies.split("\n[").next().unwrap_or_default();
            for forbidden in FORBIDDEN_IN_DOMAIN {
                for line in dependencies.lines() {
                    let is_optional = line.contains("optional = true");
                    assert!(
                        !line.trim_start().starts_with(&format!("{forbidden} "))
                            && !line.trim_start().starts_with(&format!("{forbidden}."))
                            || is_optional,
                        "{name} depends on {forbidden}"
                    );
                }
            }
            if name == "lucid-core" {
                assert!(
                    !dependencies.contains("lucid-"),
                    "lucid-core depends on another Lucid crate"
                );
            }
        }
    }

    #[test]
    fn money_crates_have_no_floats() {
        for dir in member_dirs().unwrap() {
            let name = dir.file_name().unwrap().to_string_lossy().to_string();
            let is_money = MONEY_CRATES.contains(&name.as_str());
            let mut files = Vec::new();
            rust_files(&dir.join("src"), &mut files);
            for file in files {
                let text = fs::read_to_string(&file).unwrap();
                let money_module = name == "lucid-core" && file.ends_with("money.rs");
                if is_money || money_module {
                    for token in ["f32", "f64"] {
                        let found = text
                            .split(|c: char| !c.is_alphanumeric() && c != '_')
                            .any(|word| word == token);
                        assert!(!found, "{} mentions {token}", file.display());
                    }
                }
            }
        }
    }

    #[test]
    fn architecture_names_every_crate() {
        let architecture = fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
        for name in workspace_packages().unwrap() {
            assert!(
                architecture.contains(&format!("`{name}`")),
                "ARCHITECTURE.md does not name `{name}`"
            );
        }
    }
}
