//! The party's background work, started once per instance by [`start`]:
//! learning of other instances' revocations, keeping the signing keys in
//! step, and forgetting what has passed its use. Each task is safe to run on
//! every instance at once (see docs/architecture.md, "Several instances").
//! A stop ends them all and waits for each ([`Housekeeping::stop`]).

use std::time::Duration;

use actix_web::rt::task::JoinHandle;
use actix_web::web as aw;
use tokio::sync::watch;

use crate::state::AppState;
use crate::{audit, memory};

/// The background tasks of one instance, until [`Housekeeping::stop`].
pub struct Housekeeping {
    stop: watch::Sender<bool>,
    tasks: [JoinHandle<()>; 2],
}

/// Starts the housekeeping loop and, on PostgreSQL, the revocation listener.
pub fn start(app: aw::Data<AppState>) -> Housekeeping {
    let (stop, stopping) = watch::channel(false);
    let tasks = [run_every_second(app.clone(), stopping.clone()), listen_for_revocations(app, stopping)];
    Housekeeping { stop, tasks }
}

impl Housekeeping {
    /// Ends every task between two pieces of work and waits for each, so the
    /// connections they hold are closed while the runtime still runs.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "a background task ended abnormally");
            }
        }
    }
}

/// Resolves once a stop is asked for (or nobody is left to ask).
async fn stop_asked(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// On PostgreSQL, learns of another instance's revocation as it commits
/// (`LISTEN`), so a revoked token stops working everywhere within
/// milliseconds; the once-a-second pull stays for notices missed while the
/// listener reconnects.
fn listen_for_revocations(app: aw::Data<AppState>, mut stopping: watch::Receiver<bool>) -> JoinHandle<()> {
    actix_web::rt::spawn(async move {
        let mut listener = match app.store.revocation_listener().await {
            Ok(Some(listener)) => listener,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for revocations; relying on the once-a-second pull");
                return;
            }
        };
        loop {
            // `recv` reconnects after a lost connection; what was sent meanwhile the pull finds.
            tokio::select! {
                () = stop_asked(&mut stopping) => break,
                notice = listener.recv() => match notice {
                    Ok(notice) => app.revocations.note(notice.payload(), app.now()),
                    Err(e) => {
                        tracing::warn!(error = %e, "revocation listener");
                        tokio::select! {
                            () = stop_asked(&mut stopping) => break,
                            () = actix_web::rt::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                },
            }
        }
        listener.close().await;
    })
}

/// The loop: every second, learn of revocations made by
/// other instances sharing the database and keep the signing keys in step
/// (rotation, retirement); every ten, forget rate-limit state
/// nobody needs; every ten minutes, forget device requests past their use;
/// every thirty, vouch in the audit log for a new signing key;
/// every hour, prune the rest that has passed its use (expired codes, refresh
/// tokens, grants never redeemed, sessions, and link history past its retention).
fn run_every_second(app: aw::Data<AppState>, mut stopping: watch::Receiver<bool>) -> JoinHandle<()> {
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(Duration::from_secs(1));
        let mut ticks: u64 = 0;
        loop {
            // A stop waits for the round under way, so no round is cut halfway (a prune pass aside).
            tokio::select! {
                () = stop_asked(&mut stopping) => return,
                _ = tick.tick() => {}
            }
            let now = app.now();
            if ticks.is_multiple_of(3600) {
                // A backlog may take seconds (docs/benchmarks.md): a stop ends the pass between
                // statements; each batch is a transaction of its own, so what is done stays done.
                tokio::select! {
                    () = stop_asked(&mut stopping) => return,
                    () = prune(&app, now) => {}
                }
            }
            if ticks.is_multiple_of(600) {
                // A flood naming one account leaves superseded requests: gone within 20 minutes.
                if let Err(e) = app.store.prune_device_requests(now - 86_400, now - 600).await {
                    tracing::warn!(error = %e, "pruning device requests failed");
                }
            }
            if ticks.is_multiple_of(10) {
                app.limits.housekeeping();
            }
            ticks += 1;
            memory::give_back_freed_memory();
            let forget_before = now - app.config.lifetimes.access_token - 60;
            if let Err(e) = app.revocations.sync(&app.store, now, forget_before).await {
                tracing::warn!(error = %e, "revocation sync failed");
            }
            if let Err(e) = app.keys.maintain(&app.store, now).await {
                tracing::warn!(error = %e, "signing key rotation failed");
            }
            // Well before the old key leaves the JWKS (an access token's lifetime after the change).
            if ticks.is_multiple_of(30) {
                if let Err(e) = audit::vouch_for_new_key(&app).await {
                    tracing::warn!(error = %e, "the audit log could not vouch for the new signing key");
                }
            }
        }
    })
}

/// Deletes rows past their use (the hourly part of the housekeeping loop).
pub async fn prune(app: &AppState, now: i64) {
    let started = std::time::Instant::now();
    let sessions = app.config.sessions;
    let results = [
        ("link history", app.store.prune_link_history(now - 7 * 86_400, now - 30 * 86_400).await),
        ("sessions", app.store.prune_sessions(now - sessions.absolute, now - sessions.idle).await.map(drop)),
        ("codes and refresh tokens", app.store.prune_authorizations(now).await.map(drop)),
        (
            "unused client registrations",
            app.store
                .prune_unused_registrations(now - app.config.registered_client_idle, now - 86_400, now)
                .await
                .map(drop),
        ),
    ];
    for (what, result) in results {
        if let Err(e) = result {
            tracing::warn!(error = %e, "pruning {what} failed");
        }
    }
    // Each statement is a short batch; the whole pass is what scripts/bench.sh reports at scale.
    tracing::info!("prune pass took {} ms", started.elapsed().as_millis());
}
