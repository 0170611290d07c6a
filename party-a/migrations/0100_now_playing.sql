CREATE TABLE now_playing (
    user_id    TEXT PRIMARY KEY,
    title      TEXT NOT NULL,
    artist     TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
