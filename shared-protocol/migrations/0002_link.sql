-- The link between a user's accounts here and at the peer (Reciprocal OAuth).

-- What this party holds from the peer for a user: the tokens the peer issued to
-- our client. One peer, so one row per user.
CREATE TABLE peer_tokens (
    user_id       TEXT PRIMARY KEY,
    access_token  TEXT NOT NULL,
    refresh_token TEXT,
    scope         TEXT NOT NULL,
    expires_at    BIGINT NOT NULL,
    -- NULL while usable; otherwise why it stopped working (shown on the home page).
    broken        TEXT,
    updated_at    BIGINT NOT NULL
);

-- One attempt to link (or to update what the peer may do), as a persisted
-- state machine, so a restart or a double submit never leaves half a link.
CREATE TABLE link_flows (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL,
    step             TEXT NOT NULL,
    state_digest     TEXT UNIQUE,
    pkce_verifier    TEXT,
    reciprocal_scope TEXT,
    message          TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX link_flows_user ON link_flows (user_id, updated_at);

-- The protocol messages of each attempt, secrets redacted, for /link/trace.
CREATE TABLE link_trace (
    seq        BIGINT NOT NULL,
    user_id    TEXT NOT NULL,
    attempt    TEXT NOT NULL,
    leg        TEXT NOT NULL,
    sender     TEXT NOT NULL,
    receiver   TEXT NOT NULL,
    summary    TEXT NOT NULL,
    at         BIGINT NOT NULL
);
CREATE INDEX link_trace_user ON link_trace (user_id, seq);
