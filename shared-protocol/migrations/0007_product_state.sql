-- A party's own per-user state (the assistant's now-playing card, the music
-- service's player), one JSON document per kind and user, so a party needs no
-- tables or SQL of its own. Replaces the tables the parties once migrated.
CREATE TABLE product_state (
    kind       TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    body       TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (kind, user_id)
);
DROP TABLE IF EXISTS now_playing;
DROP TABLE IF EXISTS player_state;
