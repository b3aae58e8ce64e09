//! Bad configuration and bad data dirs are refused before anything starts, with the key
//! path (or the data dir) named, and nothing touched.

mod common;

use std::time::Duration;

use common::*;
use orrery_actors::store::Store;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_out_of_range_value_exits_2_naming_the_key_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = test_config(dir.path(), port, "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("\nmax_leverage = 5\n", "\nmax_leverage = 0\n");
    std::fs::write(&config, text).unwrap();

    for command in ["run", "check-config", "status"] {
        let out = run_cli(&[command, "--config", config.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{command}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("`risk.max_leverage`"), "{command}: {err}");
        assert!(err.contains("bad value 0"), "{command}: {err}");
        assert!(
            err.contains("allowed: an integer from 1 to 100"),
            "{command}: {err}"
        );
    }
    assert!(
        !data_dir(dir.path()).exists(),
        "no data dir may be created by a refused start"
    );
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "nothing may listen"
    );
}

#[test]
fn a_bad_environment_override_and_bad_toml_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), free_port(), "");
    let out = std::process::Command::new(BIN)
        .args(["check-config", "--config", config.to_str().unwrap()])
        .env("ORRERY__TELEMETRY__LISTEN", "nowhere")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("telemetry.listen"),
        "{}",
        stderr(&out)
    );

    std::fs::write(&config, "[risk\nmax_leverage = 3\n").unwrap();
    let out = run_cli(&["run", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is not valid TOML"),
        "{}",
        stderr(&out)
    );

    let out = run_cli(&[
        "check-config",
        "--config",
        dir.path().join("missing.toml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("missing.toml"), "{}", stderr(&out));
}

#[test]
fn the_shipped_config_checks_out() {
    let out = run_cli(&[
        "check-config",
        "--config",
        concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("config OK"));
}

#[test]
fn a_newer_schema_data_dir_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), free_port(), "");
    let data = data_dir(dir.path());
    {
        let db = sled::open(&data).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert("schema_version", &999u32.to_be_bytes())
            .unwrap();
        db.open_tree("orders")
            .unwrap()
            .insert("precious", b"keep me".as_slice())
            .unwrap();
        db.flush().unwrap();
    }
    // sled's I/O threads may hold the file a moment after the drop; the engine must meet
    // the schema marker, not the lock.
    Store::wait_released(&data, Duration::from_secs(60)).unwrap();
    let mut engine = spawn_engine(&config, dir.path(), &[], &[]);
    let exit = wait_exit(&mut engine, Duration::from_secs(20));
    assert_eq!(exit.code(), Some(1));
    let log = engine_logs(dir.path());
    assert!(
        log.contains("schema version 999, newer than this binary supports"),
        "{log}"
    );
    let db = sled::open(&data).unwrap();
    assert_eq!(
        db.open_tree("meta")
            .unwrap()
            .get("schema_version")
            .unwrap()
            .unwrap()
            .as_ref(),
        &999u32.to_be_bytes()
    );
    assert_eq!(
        db.open_tree("orders")
            .unwrap()
            .get("precious")
            .unwrap()
            .unwrap()
            .as_ref(),
        b"keep me"
    );
}

#[test]
fn an_environment_override_error_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), free_port(), "");
    for value in ["abc", "1000"] {
        let out = std::process::Command::new(BIN)
            .args(["check-config", "--config", config.to_str().unwrap()])
            .env_remove("ORRERY_CONFIG")
            .env("ORRERY__RISK__MAX_LEVERAGE", value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{value}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("ORRERY__RISK__MAX_LEVERAGE"), "{value}: {err}");
        assert!(err.contains("risk.max_leverage"), "{value}: {err}");
    }
}

#[test]
fn a_missing_model_key_stops_check_config_and_run_at_once_naming_the_variables() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = test_config(
        dir.path(),
        port,
        "\n[[models.default.deployments]]\nid = \"gpt\"\nprovider = \"openai\"\nmodel = \"gpt-4o-mini\"\n",
    );
    for command in ["check-config", "run"] {
        let started = std::time::Instant::now();
        let out = std::process::Command::new(BIN)
            .args([command, "--config", config.to_str().unwrap()])
            .env_remove("ORRERY_CONFIG")
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_KEY")
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{command}: {err}");
        assert!(
            err.contains("models.default.deployments[1].api_key_env"),
            "{command}: {err}"
        );
        assert!(
            err.contains("OPENAI_API_KEY, OPENAI_KEY"),
            "{command}: {err}"
        );
        assert!(
            !err.contains("Escalated("),
            "{command}: no debug dump: {err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{command}: refused before anything starts, not after retries"
        );
    }
    assert!(!data_dir(dir.path()).exists(), "nothing was started");
}

#[test]
fn an_agent_symbol_the_paper_venue_does_not_list_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), free_port(), "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "symbols = [\"BTC\", \"ETH\", \"SOL\"]",
        "symbols = [\"BTC\", \"PEPE\"]",
    );
    std::fs::write(&config, text).unwrap();
    let out = run_cli(&["check-config", "--config", config.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("agents.trading[0].symbols[1]"), "{err}");
    assert!(
        err.contains("PEPE") && err.contains("BTC, ETH, SOL"),
        "{err}"
    );
}
