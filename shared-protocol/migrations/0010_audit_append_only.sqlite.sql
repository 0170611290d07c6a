-- The audit log is append-only in the database too: no statement of the
-- application's, or a careless one of an operator's, changes or removes an
-- entry. (Whoever can drop these triggers can tamper; `audit verify` still
-- names what they did.)
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
