-- The audit log: one signed Security Event Token (RFC 8417) per grant
-- decision. Each user's decisions form one chain (the party's own entries,
-- key changes, form another): an entry names the digest of the one before it
-- in its chain, and the unique index lets no two entries name the same one,
-- so instances appending at once never fork a chain (the loser retries).
-- The application only ever inserts here.
CREATE TABLE audit_events (
    seq      BIGINT PRIMARY KEY,
    -- The user whose decision it is, or '' for the party's own entries.
    stream   TEXT NOT NULL,
    -- The digest of the chain's previous entry, '' for its first.
    prev     TEXT NOT NULL,
    -- SHA-256 (base64url) of set_jwt: what the next entry names.
    digest   TEXT NOT NULL,
    -- The key that signed it (a change of key is vouched for by an entry first).
    kid      TEXT NOT NULL,
    at       BIGINT NOT NULL,
    set_jwt  TEXT NOT NULL
);
CREATE UNIQUE INDEX audit_events_chain ON audit_events (stream, prev);

-- Per user, the link the audit names (`txn`) and what each direction of it
-- holds now, so each change is recorded once as made, changed or ended.
CREATE TABLE audit_links (
    user_id   TEXT PRIMARY KEY,
    link_id   TEXT NOT NULL,
    -- The scope the peer holds here under this link; NULL: none.
    inbound   TEXT,
    -- The scope this party holds at the peer under this link; NULL: none.
    outbound  TEXT
);
