-- A host already registered registers again only with proof (issue 11):
-- rebind = 1 marks an administrator's `portal rebind` approval, which lets
-- the next registration from the host take over the registered portal's
-- apps; key_md5 keeps md5(licence key) of a portal that registered under a
-- licence-bound approval, so that it can later prove itself by signing a
-- server-issued challenge; portal_challenges are those challenges (SHA-256
-- of the value, single-use, expiring).
ALTER TABLE portal_allow ADD COLUMN rebind INT NOT NULL DEFAULT 0;
ALTER TABLE portal_registrations ADD COLUMN key_md5 VARCHAR(32) NOT NULL DEFAULT '';
CREATE TABLE portal_challenges (
  challenge_hash VARCHAR(64) NOT NULL PRIMARY KEY,
  host VARCHAR(255) NOT NULL,
  expires_at BIGINT NOT NULL
);
CREATE INDEX portal_challenges_host ON portal_challenges (host);
