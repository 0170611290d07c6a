//! The binary's command line (`--help`) and start-up banner.

use shared_protocol::test_support::{
    assert_bad_url_is_refused, assert_banner, assert_help_lists_flags, assert_taken_address_is_named,
};

const BIN: &str = env!("CARGO_BIN_EXE_party-a");

#[test]
fn help_lists_every_flag_with_its_default_and_environment_variable() {
    assert_help_lists_flags(BIN, &party_a::PARTY);
}

#[test]
fn start_up_prints_the_registered_client_and_demo_logins() {
    assert_banner(BIN, &party_a::PARTY);
}

#[test]
fn a_malformed_public_url_is_refused_at_start() {
    assert_bad_url_is_refused(BIN);
}

#[test]
fn a_taken_address_is_named_with_the_party_and_the_cause() {
    assert_taken_address_is_named(BIN, &party_a::PARTY);
}
