CREATE TABLE player_state (
    user_id    TEXT PRIMARY KEY,
    playing    BIGINT NOT NULL,
    title      TEXT NOT NULL,
    artist     TEXT NOT NULL,
    shared_with_assistant BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
