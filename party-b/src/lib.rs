//! Party B, the music service: its branding, its scopes and its player API.
//! Everything OAuth lives in `shared-protocol`.

pub mod player;

use shared_protocol::config::{ApiInfo, Defaults, DemoUser, Offers, Party, PeerProfile, PublicClient, ScopeInfo};

pub static PARTY: Party = Party {
    id: "party-b",
    name: "Tempo Music",
    tagline: "Your music service (party B)",
    colour: "#0f7a4b",
    session_cookie: "party_b_session",
    offers: Offers {
        scopes: &[
            ScopeInfo { name: "player:read", description: "See what is playing on your music player" },
            ScopeInfo { name: "player:control", description: "Start music on your music player" },
        ],
        to_peer: "player:read player:control",
        public_clients: &[PublicClient {
            client_id: "speaker",
            name: "Kitchen Speaker",
            grant_types: "urn:ietf:params:oauth:grant-type:device_code refresh_token",
            scope: "player:read player:control",
        }],
        apis: &[ApiInfo { path: "/api/player", scopes: &["player:read", "player:control"] }],
    },
    peer: PeerProfile {
        name: "Aria Assistant",
        client_id: "voice-assistant",
        our_client_id: "music-service",
        wants: &[
            ScopeInfo { name: "assistant:notify", description: "Show what is playing on Aria Assistant" },
            ScopeInfo { name: "assistant:announce", description: "Speak short announcements on Aria Assistant" },
        ],
    },
    home_panel: None,
    from_peer: &[],
    demo_users: &[
        DemoUser { username: "alice", password: "wonderland", role: "user" },
        DemoUser { username: "bob", password: "builder", role: "user" },
        DemoUser { username: "kiosk", password: "staff-only", role: "staff" },
    ],
    defaults: Defaults {
        listen: "127.0.0.1:8002",
        public_url: "http://localhost:8002",
        peer_url: "http://localhost:8001",
        database_url: "sqlite://data/party-b.db",
        peer_client_secret: "voice-assistant-dev-secret",
        client_secret: "music-service-dev-secret",
    },
    routes: player::routes,
};
