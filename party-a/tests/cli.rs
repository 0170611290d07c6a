//! The binary's command line (CONTRACT section 1) and start-up banner (section 2).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_party-a");

#[test]
fn help_lists_every_flag_with_its_default_and_environment_variable() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for (flag, env, default) in [
        ("--listen", "LISTEN", "127.0.0.1:8001"),
        ("--public-url", "PUBLIC_URL", "http://localhost:8001"),
        ("--peer-url", "PEER_URL", "http://localhost:8002"),
        ("--database-url", "DATABASE_URL", "sqlite://data/party-a.db"),
    ] {
        assert!(
            help.contains(flag) && help.contains(&format!("env: {env}")) && help.contains(default),
            "{flag}: {help}"
        );
    }
    assert!(!help.contains("music-service-dev-secret"), "--help must not print the client secret");
}

#[test]
fn start_up_prints_the_registered_client_and_demo_logins() {
    let dir = std::env::temp_dir().join(format!("party-a-cli-{}", std::process::id()));
    let db = format!("sqlite://{}/db.sqlite", dir.display());
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--database-url", &db])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let last = line.starts_with("demo logins");
        banner.push(line);
        if last {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let banner = banner.join("\n");
    assert!(banner.starts_with("Aria Assistant (party-a) listening on 127.0.0.1:"), "{banner}");
    assert!(banner.contains("dev client: id=music-service secret=music-service-dev-secret"), "{banner}");
    assert!(banner.contains("alice / wonderland") && banner.contains("bob / builder"), "{banner}");
}
