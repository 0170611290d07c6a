-- The device authorization grant (RFC 8628) with a staffed kiosk (seed 003).

CREATE TABLE device_requests (
    device_code_digest TEXT PRIMARY KEY,
    user_code          TEXT NOT NULL UNIQUE,  -- 8 letters, stored without the dash
    client_id          TEXT NOT NULL,
    scope              TEXT NOT NULL,
    -- The account named by login_hint, when the device named one.
    hint_user_id       TEXT,
    -- pending, approved, denied or redeemed.
    status             TEXT NOT NULL,
    -- The account the token will belong to, once approved.
    user_id            TEXT,
    expires_at         BIGINT NOT NULL,
    redeem_by          BIGINT,
    poll_interval      BIGINT NOT NULL,
    last_poll_at       BIGINT,
    created_at         BIGINT NOT NULL,
    decided_at         BIGINT
);
CREATE INDEX device_requests_hint ON device_requests (hint_user_id, status);

-- Every decision, for later review. The application only ever inserts here.
CREATE TABLE device_audit (
    seq           BIGINT NOT NULL,
    at            BIGINT NOT NULL,
    -- Which request: its device-code digest (user codes are reused once a request is gone).
    request_id    TEXT NOT NULL,
    client_id     TEXT NOT NULL,
    scope         TEXT NOT NULL,
    user_code     TEXT NOT NULL,
    account_id    TEXT NOT NULL,
    actor_id      TEXT NOT NULL,
    actor_role    TEXT NOT NULL,
    via           TEXT NOT NULL,   -- device (the account holder) or kiosk (staff)
    decision      TEXT NOT NULL    -- approve, deny or withdraw (the account holder took it back)
);
CREATE INDEX device_audit_at ON device_audit (at);
