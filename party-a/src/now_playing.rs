//! The now-playing API (docs/http.md): the music service posts a card
//! with `assistant:notify`; the assistant's page (session) or a token holder
//! reads it.

use actix_session::Session;
use actix_web::{get, post, web, FromRequest, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use shared_protocol::error::{ApiError, ApiRejection};
use shared_protocol::resource::Bearer;
use shared_protocol::state::AppState;
use shared_protocol::store::Store;
use shared_protocol::web::session;

/// The kind under which the card is stored (`Store::product_state`); the
/// music service writes it, so it goes when the music service's access ends.
pub const CARD: &str = "now_playing";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Card {
    pub title: String,
    pub artist: String,
}

impl Card {
    fn validate(&self) -> Result<(), &'static str> {
        // No control characters: they mean nothing on a card, and PostgreSQL refuses NUL.
        let ok = |s: &str| !s.trim().is_empty() && s.chars().count() <= 200 && !s.chars().any(char::is_control);
        if ok(&self.title) && ok(&self.artist) {
            Ok(())
        } else {
            Err("title and artist must be 1 to 200 characters, without control characters")
        }
    }
}

/// The user's card, kept as the product state `now_playing`.
pub async fn load(store: &Store, user_id: &str) -> Result<Option<Card>, ApiError> {
    store.product_state(CARD, user_id).await.map_err(|_| ApiError::Internal)
}

#[post("/api/now-playing")]
pub async fn post_now_playing(
    app: web::Data<AppState>,
    bearer: Bearer,
    card: web::Json<Card>,
) -> Result<HttpResponse, ApiRejection> {
    bearer.require_scope("assistant:notify")?;
    let user_id = bearer.user_id()?;
    card.validate().map_err(|e| bearer.reject(ApiError::BadRequest(e.into())))?;
    let card = Card { title: card.title.trim().to_owned(), artist: card.artist.trim().to_owned() };
    app.store
        .put_product_state(CARD, user_id, &card, app.now())
        .await
        .map_err(|_| bearer.reject(ApiError::Internal))?;
    Ok(HttpResponse::Ok().json(json!({ "now_playing": card })))
}

/// Signed-in users read their own card; otherwise a token with `assistant:notify`.
#[get("/api/now-playing")]
pub async fn get_now_playing(
    app: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
) -> Result<HttpResponse, ApiRejection> {
    let user_id = match session::user_id(&session) {
        Some(id) => id,
        None => {
            let bearer = Bearer::extract(&req).await?;
            bearer.require_scope("assistant:notify")?;
            bearer.user_id()?.to_owned()
        }
    };
    let card = load(&app.store, &user_id)
        .await
        .map_err(|error| ApiRejection { error, challenge: app.challenge(req.path()) })?;
    Ok(HttpResponse::Ok().json(json!({ "now_playing": card })))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(post_now_playing).service(get_now_playing);
}
