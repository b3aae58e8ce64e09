//! `examples/embedded.rs` is built and run by the test suite: it starts the engine on
//! the default config inside its own program, places a paper order, reads it back, sees
//! it on the event stream and shuts down.

mod common;

use std::path::PathBuf;
use std::process::Command;

/// The example's binary: built by `cargo build --example embedded` (a no-op when cargo
/// already built it for this test run).
fn example_binary() -> PathBuf {
    // Without the variables cargo sets for running this test: build scripts (ring's, via
    // cc) track some of them, so inheriting them would rebuild half the dependency graph.
    let mut cargo = Command::new(env!("CARGO"));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let for_this_test = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ]
        .iter()
        .any(|p| key.starts_with(p))
            || [
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "OUT_DIR",
                "LD_LIBRARY_PATH",
            ]
            .contains(&key.as_ref());
        if for_this_test {
            cargo.env_remove(key.as_ref());
        }
    }
    let status = cargo
        .args(["build", "--example", "embedded"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the example failed");
    // Tests run from target/<profile>/deps; examples are in target/<profile>/examples.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap();
    profile_dir.join("examples").join("embedded")
}

#[test]
fn the_embedding_example_places_reads_back_and_shuts_down() {
    let bin = example_binary();
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let out = Command::new(&bin)
        .env("ORRERY__ENGINE__DATA_DIR", dir.path().join("data"))
        .env("ORRERY__TELEMETRY__LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        // The example waits for its fill on the event stream, which the ledger records at
        // its next reconciliation with the venue: every second instead of every 30 here.
        .env("ORRERY__EXCHANGES__RECONCILE_INTERVAL", "1s")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let line = |prefix: &str| -> Vec<String> {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{stdout}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let placed = line("order placed: ");
    assert_eq!(placed[1], "filled", "{stdout}");
    let read = line("order read back: ");
    assert_eq!(read[0], placed[0], "the ledger has the same client id");
    assert_eq!(read[1], "filled");
    assert_ne!(read[3], "0", "a filled order has a filled size");
    let event = line("order event: ");
    assert_eq!(event[..2], placed[..2]);
    assert_eq!(line("engine stopped: "), vec!["Normal"]);
    // Shut down means the data dir was released: it opens at once.
    orrery_actors::store::Store::open(dir.path().join("data")).unwrap();
}
