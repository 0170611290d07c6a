-- One schema for SQLite and PostgreSQL: TEXT, BIGINT (Unix seconds, 0/1 flags).

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL DEFAULT 'user',
    created_at    BIGINT NOT NULL
);

-- Registered clients. The secret is a SHA-256 digest (secrets are high-entropy).
CREATE TABLE clients (
    client_id     TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    secret_digest TEXT,
    redirect_uris TEXT NOT NULL,  -- space-separated, matched exactly
    grant_types   TEXT NOT NULL,  -- space-separated
    scope         TEXT NOT NULL,  -- the most this client may ask for
    jwks_uri      TEXT            -- for private_key_jwt (RFC 7523)
);

-- Signing keys live in the database so restarts and instances agree.
CREATE TABLE signing_keys (
    kid        TEXT PRIMARY KEY,
    alg        TEXT NOT NULL,
    pkcs8      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- A grant: what one authorization (a code, later its refresh chain) stands for.
-- Revoking it revokes every token of its family.
CREATE TABLE grants (
    id         TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    user_id    TEXT,
    scope      TEXT NOT NULL,
    audience   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX grants_user_client ON grants (user_id, client_id);

CREATE TABLE revoked_grants (
    grant_id   TEXT PRIMARY KEY,
    revoked_at BIGINT NOT NULL
);
CREATE INDEX revoked_grants_at ON revoked_grants (revoked_at);

CREATE TABLE authorization_codes (
    digest         TEXT PRIMARY KEY,
    grant_id       TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    redirect_uri   TEXT,
    scope          TEXT NOT NULL,
    audience       TEXT NOT NULL,
    code_challenge TEXT,
    expires_at     BIGINT NOT NULL,
    consumed_at    BIGINT
);

CREATE TABLE refresh_tokens (
    digest     TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);

CREATE TABLE consents (
    user_id   TEXT NOT NULL,
    client_id TEXT NOT NULL,
    scope     TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

-- Seen private_key_jwt assertion ids, kept until the assertion expires (RFC 7523 3).
CREATE TABLE assertion_jtis (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
