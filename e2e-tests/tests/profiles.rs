//! The two parties are registered at each other beforehand (draft section 1):
//! what one profile says of its peer must be what the peer's profile says of
//! itself, or the link fails at the first token request. No binary runs here.

use shared_protocol::config::{Cli, Config, Party};

fn config(party: &'static Party) -> Config {
    Config::from_cli(party, Cli::parse_from_for(party, [party.id]))
}

fn names(party: &Party) -> Vec<&'static str> {
    party.offers.scopes.iter().map(|s| s.name).collect()
}

fn agree(here: &'static Party, there: &'static Party) {
    let (h, t) = (config(here), config(there));
    assert_eq!(here.peer.name, there.name, "{} names its peer", here.id);
    assert_eq!(here.peer.client_id, there.peer.our_client_id, "{}'s client at {}", there.id, here.id);
    assert_eq!(here.defaults.peer_client_secret, there.defaults.client_secret, "{}'s dev secret", there.id);
    assert_eq!(h.peer_url, t.public_url, "{}'s peer URL", here.id);
    // The one redirect URI registered here for the peer is where the peer's requests come back.
    assert_eq!(h.peer_redirect_uri(), t.redirect_uri());
    // What this party offers its peer exists here; what the peer asks for is exactly that.
    let offered: Vec<&str> = here.offers.to_peer.split(' ').collect();
    assert!(offered.iter().all(|s| names(here).contains(s)), "{} offers only its own scopes", here.id);
    let wanted: Vec<&str> = there.peer.wants.iter().map(|s| s.name).collect();
    assert_eq!(wanted, offered, "{} wants what {} offers it", there.id, here.id);
}

#[test]
fn each_party_is_registered_at_the_other_as_the_other_says() {
    agree(&party_a::PARTY, &party_b::PARTY);
    agree(&party_b::PARTY, &party_a::PARTY);
}

#[test]
fn public_clients_ask_only_for_scopes_their_party_offers() {
    for party in [&party_a::PARTY, &party_b::PARTY] {
        for c in party.offers.public_clients {
            assert!(c.scope.split(' ').all(|s| names(party).contains(&s)), "{} at {}", c.client_id, party.id);
        }
    }
}
