//! The player API (docs/http.md): `GET /api/player` needs
//! `player:read`, `POST /api/player/play` needs `player:control`.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use shared_protocol::error::{ApiError, ApiRejection};
use shared_protocol::link;
use shared_protocol::resource::Bearer;
use shared_protocol::state::AppState;

/// The kind under which a user's player is stored (`Store::product_state`).
const PLAYER: &str = "player";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlayerState {
    pub playing: bool,
    pub title: Option<String>,
    pub artist: Option<String>,
    pub shared_with_assistant: bool,
}

#[derive(Deserialize)]
pub struct PlayRequest {
    pub query: String,
}

/// A tiny catalogue: (keywords, title, artist).
const CATALOGUE: &[(&[&str], &str, &str)] = &[
    (&["jazz", "miles", "davis", "so what"], "So What", "Miles Davis"),
    (&["rock", "queen", "bohemian"], "Bohemian Rhapsody", "Queen"),
    (&["classical", "bach", "cello"], "Cello Suite No. 1", "Johann Sebastian Bach"),
    (&["pop", "abba", "dancing"], "Dancing Queen", "ABBA"),
    (&["electronic", "daft", "punk"], "Around the World", "Daft Punk"),
    (&["soul", "aretha", "respect"], "Respect", "Aretha Franklin"),
];

/// The track a spoken query asks for; an unknown query plays a station named after it.
pub fn pick_track(query: &str) -> (String, String) {
    let q = query.to_lowercase();
    CATALOGUE
        .iter()
        .find(|(keys, _, _)| keys.iter().any(|k| q.contains(k)))
        .map(|(_, t, a)| ((*t).to_owned(), (*a).to_owned()))
        .unwrap_or_else(|| (format!("{} Radio", title_case(query.trim())), "Tempo Stations".to_owned()))
}

fn title_case(s: &str) -> String {
    s.split_whitespace()
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_uppercase().chain(c).collect::<String>()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The user's player, kept as the product state `player`; stopped until first played.
async fn load(app: &AppState, user_id: &str) -> Result<PlayerState, ApiError> {
    let stored = app.store.product_state(PLAYER, user_id).await.map_err(|_| ApiError::Internal)?;
    Ok(stored.unwrap_or(PlayerState { playing: false, title: None, artist: None, shared_with_assistant: false }))
}

async fn save(app: &AppState, user_id: &str, state: &PlayerState) -> Result<(), ApiError> {
    app.store.put_product_state(PLAYER, user_id, state, app.now()).await.map_err(|_| ApiError::Internal)
}

#[get("/api/player")]
pub async fn player_state(app: web::Data<AppState>, bearer: Bearer) -> Result<HttpResponse, ApiRejection> {
    bearer.require_scope("player:read")?;
    let state = load(&app, bearer.user_id()?).await.map_err(|e| bearer.reject(e))?;
    Ok(HttpResponse::Ok().json(state))
}

#[post("/api/player/play")]
pub async fn play(
    app: web::Data<AppState>,
    bearer: Bearer,
    body: web::Json<PlayRequest>,
) -> Result<HttpResponse, ApiRejection> {
    bearer.require_scope("player:control")?;
    let user_id = bearer.user_id()?;
    let query = body.query.trim();
    if query.is_empty() || query.chars().count() > 200 || query.chars().any(char::is_control) {
        let why = "query must be 1 to 200 characters, without control characters";
        return Err(bearer.reject(ApiError::BadRequest(why.into())));
    }
    let (title, artist) = pick_track(query);
    let mut state =
        PlayerState { playing: true, title: Some(title), artist: Some(artist), shared_with_assistant: false };
    save(&app, user_id, &state).await.map_err(|e| bearer.reject(e))?;
    // Playback for a user linked with the assistant shows up there,
    // whichever client started it, with the token the assistant issued to us.
    let card = serde_json::json!({ "title": state.title, "artist": state.artist });
    // The caller may be the assistant itself, waiting on this answer with its
    // own timeout: the card gets half of one, and the music plays regardless.
    let budget = app.config.peer_timeout / 2;
    let posted = actix_web::rt::time::timeout(budget, link::call_peer_api(&app, user_id, "/api/now-playing", &card))
        .await
        .unwrap_or_else(|_| Err(link::LinkProblem::Unreachable("no answer in time".into())));
    match posted {
        Ok(_) => {
            state.shared_with_assistant = true;
            save(&app, user_id, &state).await.map_err(|e| bearer.reject(e))?;
        }
        // Not linked with the assistant: nothing to show there.
        Err(link::LinkProblem::NotLinked) => {}
        Err(p) => tracing::info!(problem = %p.describe(app.config.party.peer.name), "now-playing not shared"),
    }
    Ok(HttpResponse::Ok().json(state))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(player_state).service(play);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_genre_picks_its_track() {
        assert_eq!(pick_track("play some Jazz"), ("So What".to_owned(), "Miles Davis".to_owned()));
    }

    #[test]
    fn an_unknown_query_plays_a_station() {
        assert_eq!(pick_track("sea shanties").0, "Sea Shanties Radio");
    }
}
