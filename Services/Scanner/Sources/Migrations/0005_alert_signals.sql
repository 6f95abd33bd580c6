-- What the scanner's alerts are computed from (notification's scansFailing, registryUnreachable, feedsStale).

-- When each feed was last fetched and found readable, changed or not: staleness is measured from here.
ALTER TABLE kb_feeds ADD COLUMN checked_at timestamptz NOT NULL DEFAULT now();

-- A digest's failed scan attempts since its last successful scan; the row goes when a scan succeeds.
CREATE TABLE scan_failure_streaks (
  registry_id uuid NOT NULL,
  repository text NOT NULL,
  digest text NOT NULL,
  since timestamptz NOT NULL,
  failures integer NOT NULL,
  last_error text NOT NULL,
  PRIMARY KEY (registry_id, repository, digest)
);

-- A registry the scanner could not reach, since when; the row goes when a scan of it succeeds.
CREATE TABLE unreachable_registries (
  registry_id uuid PRIMARY KEY,
  since timestamptz NOT NULL,
  last_error text NOT NULL
);
