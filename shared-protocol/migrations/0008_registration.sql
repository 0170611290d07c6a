-- RFC 7591 dynamic registration: a registered client's inline JWKS (for
-- private_key_jwt), the token endpoint authentication method it chose, the
-- digest of its RFC 7592 registration access token, and when it registered.
-- Configured clients (the peer, the device) leave all four NULL.
ALTER TABLE clients ADD COLUMN jwks TEXT;
ALTER TABLE clients ADD COLUMN auth_method TEXT;
ALTER TABLE clients ADD COLUMN registration_digest TEXT;
ALTER TABLE clients ADD COLUMN registered_at BIGINT;
CREATE INDEX clients_registered_at ON clients (registered_at);
CREATE INDEX grants_client ON grants (client_id);
