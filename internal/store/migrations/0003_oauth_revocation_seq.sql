-- The revocation feed moves into oauth_access: revoked_seq orders revoked
-- access tokens (0 = not revoked), so that revoking one costs one UPDATE
-- instead of an UPDATE and an INSERT on the refresh path.
ALTER TABLE oauth_access ADD COLUMN revoked_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX oauth_access_revoked_seq ON oauth_access (revoked_seq);
DROP TABLE oauth_revocations;
