-- The portal protocol (internal/portal): who may register as a portal,
-- what each registration said, and the outbox of rest.event.call items
-- waiting for eventrelay. Times are unix seconds; 0 = never / not yet.

-- Hosts an administrator approved for /oauth/register/ (`authprovider
-- portal allow`). once = 1 is a one-time enrollment: the row is consumed by
-- the first registration.
CREATE TABLE portal_allow (
  host VARCHAR(255) NOT NULL PRIMARY KEY,
  once INT NOT NULL,
  expires_at BIGINT NOT NULL,
  note VARCHAR(255) NOT NULL,
  created_at BIGINT NOT NULL
);

-- One row per portal client created by /oauth/register/ or `portal add`:
-- the license facts the portal sent (BX_TYPE; md5 hash of the licence as
-- sent, never the key).
CREATE TABLE portal_registrations (
  client_id VARCHAR(64) NOT NULL PRIMARY KEY,
  host VARCHAR(255) NOT NULL,
  member_type VARCHAR(16) NOT NULL,
  licence VARCHAR(64) NOT NULL,
  created_at BIGINT NOT NULL
);

-- rest.event.call batches eventrelay did not take yet, in arrival order
-- (seq). id doubles as the Idempotency-Key sent to the relay. dead = 1:
-- the relay refused the batch as malformed; kept for the administrator.
CREATE TABLE event_outbox (
  id VARCHAR(40) NOT NULL PRIMARY KEY,
  seq BIGINT NOT NULL,
  portal VARCHAR(64) NOT NULL,
  body LONGTEXT NOT NULL,
  attempts INT NOT NULL,
  next_at BIGINT NOT NULL,
  dead INT NOT NULL,
  last_error VARCHAR(255) NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX event_outbox_dead_seq ON event_outbox (dead, seq);
