//! The assistant's own page: a text box standing in for a voice command
//! (`POST /assistant/play`), and the now-playing card, kept live by a small
//! script that polls `GET /api/now-playing` (the page works without it).

use actix_session::Session;
use actix_web::http::header;
use actix_web::{get, post, web, HttpResponse};
use askama::Template;
use futures_util::future::LocalBoxFuture;
use serde_json::json;
use shared_protocol::error::PageError;
use shared_protocol::link::{self, LinkProblem};
use shared_protocol::state::AppState;
use shared_protocol::store::Store;
use shared_protocol::web::form::PageForm;
use shared_protocol::web::pages::redirect;
use shared_protocol::web::session;

use crate::now_playing::{self, Card};

#[derive(Template)]
#[template(path = "panel.html")]
struct Panel {
    card: Option<Card>,
    csrf_field: &'static str,
    csrf: String,
}

/// The assistant's part of the home page.
pub fn panel<'a>(store: &'a Store, user_id: &'a str, csrf: &'a str) -> LocalBoxFuture<'a, Option<String>> {
    Box::pin(async move {
        let card = now_playing::load(store, user_id).await.ok().flatten();
        Panel { card, csrf_field: session::CSRF_FIELD, csrf: csrf.to_owned() }.render().ok()
    })
}

/// "Play something": A calls B's `/api/player/play` with the token B issued to A.
#[post("/assistant/play")]
pub async fn play(
    app: web::Data<AppState>,
    session: Session,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let user_id = session::user_id(&session).ok_or_else(|| PageError::bad_request("Sign in first."))?;
    let query = form.get("query").map(str::trim).unwrap_or_default();
    if query.is_empty() || query.chars().count() > 200 {
        session::set_notice(&session, "Say what to play (up to 200 characters).");
        return Ok(redirect("/"));
    }
    let peer = app.config.party.peer.name;
    let message = match link::call_peer_api(&app, &user_id, "/api/player/play", &json!({ "query": query })).await {
        Ok(state) => {
            let title = state["title"].as_str().unwrap_or("something");
            let artist = state["artist"].as_str().unwrap_or("someone");
            if state["shared_with_assistant"] == true {
                format!("{peer} is playing {title} by {artist}.")
            } else {
                format!("{peer} is playing {title} by {artist}, but cannot show it here: it has no access to this assistant.")
            }
        }
        Err(LinkProblem::NotLinked) => format!("Link with {peer} first, then ask again."),
        Err(p) => p.describe(peer),
    };
    session::set_notice(&session, &message);
    Ok(redirect("/"))
}

#[get("/static/live.js")]
pub async fn live_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!("../static/live.js"))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(play).service(live_script);
}
