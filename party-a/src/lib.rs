//! Party A, the voice assistant: its branding, its scopes and its
//! now-playing API. Everything OAuth lives in `shared-protocol`.

pub mod assistant;
pub mod now_playing;

use shared_protocol::config::{ApiInfo, Defaults, DemoUser, FromPeer, Offers, Party, PeerProfile, ScopeInfo};

pub static PARTY: Party = Party {
    id: "party-a",
    name: "Aria Assistant",
    tagline: "Your voice assistant (party A)",
    colour: "#5b2a86",
    session_cookie: "party_a_session",
    offers: Offers {
        scopes: &[
            ScopeInfo { name: "assistant:notify", description: "Show now-playing cards on your assistant" },
            ScopeInfo { name: "assistant:announce", description: "Speak short announcements on your assistant" },
        ],
        to_peer: "assistant:notify assistant:announce",
        public_clients: &[],
        apis: &[ApiInfo { path: "/api/now-playing", scopes: &["assistant:notify"] }],
    },
    peer: PeerProfile {
        name: "Tempo Music",
        client_id: "music-service",
        our_client_id: "voice-assistant",
        wants: &[
            ScopeInfo { name: "player:read", description: "See what is playing on Tempo Music" },
            ScopeInfo { name: "player:control", description: "Start music on Tempo Music" },
        ],
    },
    home_panel: Some(assistant::panel),
    from_peer: &[FromPeer { kind: now_playing::CARD, scope: "assistant:notify" }],
    demo_users: &[
        DemoUser { username: "alice", password: "wonderland", role: "user" },
        DemoUser { username: "bob", password: "builder", role: "user" },
    ],
    defaults: Defaults {
        listen: "127.0.0.1:8001",
        public_url: "http://localhost:8001",
        peer_url: "http://localhost:8002",
        database_url: "sqlite://data/party-a.db",
        peer_client_secret: "music-service-dev-secret",
        client_secret: "voice-assistant-dev-secret",
    },
    routes,
};

fn routes(cfg: &mut actix_web::web::ServiceConfig) {
    now_playing::routes(cfg);
    assistant::routes(cfg);
}
