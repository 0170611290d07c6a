-- The audit log is append-only in the database too: no statement of the
-- application's, or a careless one of an operator's, changes or removes an
-- entry. (Whoever can drop these triggers can tamper; `audit verify` still
-- names what they did.)
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
-- INSERT OR REPLACE deletes the row it conflicts with without firing the
-- delete trigger: an insert that would take a used place is dropped instead
-- (IGNORE, so the application's ON CONFLICT DO NOTHING still sees no row).
CREATE TRIGGER audit_events_no_replace BEFORE INSERT ON audit_events
WHEN EXISTS (SELECT 1 FROM audit_events WHERE seq = NEW.seq OR (stream = NEW.stream AND prev = NEW.prev))
BEGIN SELECT RAISE(IGNORE); END;
