-- When a rotated-out refresh token was honoured once more within
-- --refresh-reuse-grace (at most once: a second return is reuse).
ALTER TABLE refresh_tokens ADD COLUMN regranted_at BIGINT;
