-- What keeps every page and the hourly prune flat at a million users.

-- A grant records when a code of its was redeemed, so the home page reads one
-- row per grant and redeemed codes can be pruned once past their life.
ALTER TABLE grants ADD COLUMN redeemed_at BIGINT;
CREATE INDEX authorization_codes_grant ON authorization_codes (grant_id);
UPDATE grants SET redeemed_at = (
    SELECT MIN(c.consumed_at) FROM authorization_codes c WHERE c.grant_id = grants.id
) WHERE EXISTS (SELECT 1 FROM authorization_codes c WHERE c.grant_id = grants.id AND c.consumed_at IS NOT NULL);

-- Each prune statement finds its rows through an index.
CREATE INDEX link_trace_at ON link_trace (at);
CREATE INDEX sessions_last_seen ON sessions (last_seen_at);
CREATE INDEX link_flows_finished ON link_flows (updated_at) WHERE step IN ('done', 'failed');
