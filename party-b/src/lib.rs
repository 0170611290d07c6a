//! Party B, the music service: its branding, its scopes and its player API.
//! Everything OAuth lives in `shared-protocol`.

pub mod player;

use shared_protocol::config::{Defaults, DemoUser, Party, PublicClient, ScopeInfo};
use shared_protocol::store::PartyMigration;

pub static PARTY: Party = Party {
    id: "party-b",
    name: "Tempo Music",
    tagline: "Your music service (party B)",
    colour: "#0f7a4b",
    session_cookie: "party_b_session",
    scopes: &[
        ScopeInfo { name: "player:read", description: "See what is playing on your music player" },
        ScopeInfo { name: "player:control", description: "Start music on your music player" },
    ],
    peer_client_id: "voice-assistant",
    peer_name: "Aria Assistant",
    own_client_id: "music-service",
    peer_scope: "player:read player:control",
    peer_scopes: &[
        ScopeInfo { name: "assistant:notify", description: "Show what is playing on Aria Assistant" },
        ScopeInfo { name: "assistant:announce", description: "Speak short announcements on Aria Assistant" },
    ],
    home_panel: None,
    public_clients: &[PublicClient {
        client_id: "speaker",
        name: "Kitchen Speaker",
        grant_types: "urn:ietf:params:oauth:grant-type:device_code refresh_token",
        scope: "player:read player:control",
    }],
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
    migrations: &[PartyMigration {
        version: 100,
        description: "player",
        sql: include_str!("../migrations/0100_player.sql"),
    }],
    routes: player::routes,
};
