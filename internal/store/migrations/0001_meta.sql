-- Installation-wide settings and facts (e.g. the install id). Key/value, small.
CREATE TABLE meta (
  name VARCHAR(128) NOT NULL PRIMARY KEY,
  value TEXT NOT NULL,
  updated_at BIGINT NOT NULL
);
