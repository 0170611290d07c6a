//! docs/architecture.md is the map of the code: a crate of the workspace or
//! a top-level module of the protocol crate that the map does not name is a
//! room nobody was told about, and a row naming a module that no longer
//! exists sends a reader nowhere. Both fail here.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn architecture() -> String {
    std::fs::read_to_string(workspace().join("docs/architecture.md")).unwrap_or_default()
}

/// The protocol crate's top-level modules as the map links them: `name.rs`,
/// or `name/mod.rs` for a folder (`lib.rs`, the crate root, is the map itself).
fn modules() -> Vec<String> {
    let src = workspace().join("shared-protocol/src");
    let mut names: Vec<String> = std::fs::read_dir(&src)
        .map(|entries| entries.flatten().map(|e| e.path()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?.to_owned();
            match path.is_dir() {
                true => path.join("mod.rs").exists().then(|| format!("{name}/mod.rs")),
                false => (name.ends_with(".rs") && name != "lib.rs").then_some(name),
            }
        })
        .collect();
    names.sort();
    names
}

#[test]
fn every_top_level_module_has_a_row_on_the_map() {
    let map = architecture();
    let missing: Vec<String> =
        modules().into_iter().filter(|m| !map.contains(&format!("](../shared-protocol/src/{m})"))).collect();
    assert!(missing.is_empty(), "docs/architecture.md names no link to: {missing:?}");
}

#[test]
fn every_module_the_map_links_exists() {
    let map = architecture();
    let marker = "](../shared-protocol/src/";
    let dangling: Vec<&str> = map
        .match_indices(marker)
        .filter_map(|(at, _)| map[at + marker.len()..].split(')').next())
        .filter(|path| !workspace().join("shared-protocol/src").join(path).exists())
        .collect();
    assert!(dangling.is_empty(), "docs/architecture.md links to what does not exist: {dangling:?}");
}

#[test]
fn every_crate_of_the_workspace_is_on_the_map() {
    let manifest = std::fs::read_to_string(workspace().join("Cargo.toml")).unwrap_or_default();
    let members = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .map(|l| l.split('"').skip(1).step_by(2).map(str::to_owned).collect::<Vec<_>>())
        .unwrap_or_default();
    assert!(members.len() >= 5, "the workspace's members were read: {members:?}");
    let map = architecture();
    let missing: Vec<&String> = members.iter().filter(|m| !map.contains(&format!("`{m}`"))).collect();
    assert!(missing.is_empty(), "docs/architecture.md does not name the crates {missing:?} (as `name`)");
}
