//! Both clients explain themselves and refuse to run without what they need.
//! (As integration tests they also make cargo build the binaries the
//! end-to-end tests run.)

use std::process::Command;

#[test]
fn the_device_simulator_needs_an_account_and_says_which_flags_it_takes() {
    let bin = env!("CARGO_BIN_EXE_device-simulator");
    let help = Command::new(bin).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in ["--issuer", "--account", "--name", "--scope", "--api", "--max-wait"] {
        assert!(text.contains(flag), "{flag} in {text}");
    }
    let missing = Command::new(bin).output().unwrap();
    assert_eq!(missing.status.code(), Some(2), "the account is required");
}

#[test]
fn discover_needs_an_api_and_a_trusted_issuer() {
    let bin = env!("CARGO_BIN_EXE_discover");
    let missing = Command::new(bin).arg("http://localhost:9/api").output().unwrap();
    assert_eq!(missing.status.code(), Some(2), "--trust is required");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--trust"));
    // Nothing listens on port 9: a clear failure, not a panic.
    let down = Command::new(bin).args(["http://127.0.0.1:9/api", "--trust", "http://127.0.0.1:9"]).output().unwrap();
    assert_eq!(down.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&down.stderr).starts_with("discover: "),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
}
