-- Browser sessions the server knows, so signing out ends a session wherever
-- its cookie was copied, and sessions have an idle and an absolute lifetime.
-- The cookie carries the session id; only its digest is kept here.
CREATE TABLE sessions (
    id_digest    TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_created ON sessions (created_at);

-- Who asked for a device code, so one address cannot fill the kiosk, and
-- the order requests arrived in (within a second too), so the newest win.
ALTER TABLE device_requests ADD COLUMN client_address TEXT;
ALTER TABLE device_requests ADD COLUMN created_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX device_requests_address ON device_requests (client_address, status);
CREATE INDEX device_requests_expiry ON device_requests (status, expires_at);

-- Pruning finds expired codes and refresh tokens by their expiry.
CREATE INDEX authorization_codes_expiry ON authorization_codes (expires_at);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);
