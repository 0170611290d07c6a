-- When a registered client (RFC 7591) or a metadata document's client was
-- last used (authenticated at the token endpoint, or started an
-- authorization), written at most once an hour: one unused for
-- --registered-client-idle-days is pruned with its grants. Configured
-- clients leave it NULL.
ALTER TABLE clients ADD COLUMN last_used_at BIGINT;
UPDATE clients SET last_used_at = registered_at WHERE registered_at IS NOT NULL;
CREATE INDEX clients_last_used ON clients (last_used_at);
