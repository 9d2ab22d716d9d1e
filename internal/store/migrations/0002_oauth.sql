-- OAuth clients (REST apps and registered portals), authorization codes,
-- access and refresh tokens. Tokens and secrets are stored only as keyed
-- hashes (signatures): a dump of these tables holds no usable credential.
-- Times are unix seconds; 0 means "not yet" (used_at, revoked_at) or
-- "server default" (the *_ttl columns, in seconds).
CREATE TABLE oauth_clients (
  id VARCHAR(64) NOT NULL PRIMARY KEY,
  kind VARCHAR(16) NOT NULL,
  name VARCHAR(255) NOT NULL,
  redirect_uri TEXT NOT NULL,
  scope TEXT NOT NULL,
  status VARCHAR(4) NOT NULL,
  active INT NOT NULL,
  portal VARCHAR(64) NOT NULL,
  host VARCHAR(255) NOT NULL,
  token_prefix VARCHAR(64) NOT NULL,
  access_ttl BIGINT NOT NULL,
  refresh_ttl BIGINT NOT NULL,
  code_ttl BIGINT NOT NULL,
  secret_hash VARCHAR(128) NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX oauth_clients_kind_portal ON oauth_clients (kind, portal);

-- request_id names a chain: the code, the first token pair and every pair
-- refreshed from it share it (fosite's request ID).
CREATE TABLE oauth_codes (
  signature VARCHAR(64) NOT NULL PRIMARY KEY,
  request_id VARCHAR(64) NOT NULL,
  client_id VARCHAR(64) NOT NULL,
  user_id BIGINT NOT NULL,
  scope TEXT NOT NULL,
  params TEXT NOT NULL,
  portal VARCHAR(64) NOT NULL,
  redirect_uri TEXT NOT NULL,
  requested_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  used_at BIGINT NOT NULL
);
CREATE INDEX oauth_codes_expires ON oauth_codes (expires_at);

CREATE TABLE oauth_access (
  signature VARCHAR(64) NOT NULL PRIMARY KEY,
  request_id VARCHAR(64) NOT NULL,
  client_id VARCHAR(64) NOT NULL,
  user_id BIGINT NOT NULL,
  scope TEXT NOT NULL,
  params TEXT NOT NULL,
  portal VARCHAR(64) NOT NULL,
  requested_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  revoked_at BIGINT NOT NULL
);
CREATE INDEX oauth_access_request ON oauth_access (request_id);
CREATE INDEX oauth_access_client_user ON oauth_access (client_id, user_id);
CREATE INDEX oauth_access_expires ON oauth_access (expires_at);

CREATE TABLE oauth_refresh (
  signature VARCHAR(64) NOT NULL PRIMARY KEY,
  request_id VARCHAR(64) NOT NULL,
  access_signature VARCHAR(64) NOT NULL,
  client_id VARCHAR(64) NOT NULL,
  user_id BIGINT NOT NULL,
  scope TEXT NOT NULL,
  params TEXT NOT NULL,
  portal VARCHAR(64) NOT NULL,
  requested_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  used_at BIGINT NOT NULL,
  revoked_at BIGINT NOT NULL
);
CREATE INDEX oauth_refresh_request ON oauth_refresh (request_id);
CREATE INDEX oauth_refresh_client_user ON oauth_refresh (client_id, user_id);
CREATE INDEX oauth_refresh_expires ON oauth_refresh (expires_at);

-- The feed of revoked access-token signatures that validation caches follow
-- (Service.Revocations). seq orders it; a row can go once its token expired.
CREATE TABLE oauth_revocations (
  signature VARCHAR(64) NOT NULL PRIMARY KEY,
  seq BIGINT NOT NULL,
  expires_at BIGINT NOT NULL
);
CREATE INDEX oauth_revocations_seq ON oauth_revocations (seq);
