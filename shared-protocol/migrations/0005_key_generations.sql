-- Each signing key has a generation, unique: instances starting together (or
-- rotating together) insert the same generation and exactly one key wins.
ALTER TABLE signing_keys ADD COLUMN generation BIGINT;
UPDATE signing_keys SET generation = (
    SELECT COUNT(*) FROM signing_keys AS older
    WHERE older.created_at < signing_keys.created_at
       OR (older.created_at = signing_keys.created_at AND older.kid < signing_keys.kid)
);
CREATE UNIQUE INDEX signing_keys_generation ON signing_keys (generation);
