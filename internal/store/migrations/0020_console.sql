-- The web console (internal/console): its users, their sessions, and the
-- audit log of every change made through the console, the CLI or the admin
-- API. Passwords are argon2id hashes (PHC string); a session row holds the
-- SHA-256 of the session id, never the id. Times are unix milliseconds.
CREATE TABLE console_users (
  name VARCHAR(64) NOT NULL PRIMARY KEY,
  role VARCHAR(16) NOT NULL,
  password_hash VARCHAR(255) NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);

CREATE TABLE console_sessions (
  id_hash VARCHAR(64) NOT NULL PRIMARY KEY,
  user_name VARCHAR(64) NOT NULL,
  csrf VARCHAR(64) NOT NULL,
  remote VARCHAR(128) NOT NULL,
  created_at BIGINT NOT NULL,
  last_seen BIGINT NOT NULL
);
CREATE INDEX console_sessions_user ON console_sessions (user_name);

-- source: console, cli or admin-api. actor: the console user, the OS user
-- of a CLI command, or "admin-key". remote: the caller's address.
CREATE TABLE audit_log (
  id VARCHAR(32) NOT NULL PRIMARY KEY,
  at_ms BIGINT NOT NULL,
  source VARCHAR(16) NOT NULL,
  actor VARCHAR(64) NOT NULL,
  action VARCHAR(64) NOT NULL,
  target VARCHAR(255) NOT NULL,
  detail TEXT NOT NULL,
  remote VARCHAR(128) NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at_ms);
