-- Intake only records events; the event processor handles them afterwards (processed_at, outcome).
-- seq keeps the order events arrived in. Events recorded before this migration were handled when they arrived.
ALTER TABLE events
  ADD COLUMN source text NOT NULL DEFAULT 'distribution' CHECK (source IN ('distribution', 'acr', 'harbor')),
  ADD COLUMN occurred_at timestamptz,
  ADD COLUMN processed_at timestamptz,
  ADD COLUMN outcome text,
  ADD COLUMN seq bigserial;
UPDATE events SET processed_at = received_at,
  outcome = CASE WHEN scan_requested THEN 'scan requested' ELSE 'recorded' END;
CREATE INDEX events_pending ON events (seq) WHERE processed_at IS NULL;

-- One webhook secret per registry; only its SHA-256 (hex) is kept.
CREATE TABLE webhook_secrets (
  registry_id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL,
  secret_sha256 text NOT NULL CHECK (length(secret_sha256) = 64),
  created_at timestamptz NOT NULL DEFAULT now()
);

-- The images the registry's events describe. generation counts deletions: an image pushed again after
-- its deletion is a new generation, scanned again; scan_requested_generation says which one was.
CREATE TABLE images (
  registry_id uuid NOT NULL,
  repository text NOT NULL,
  digest text NOT NULL,
  tenant_id uuid NOT NULL,
  subscription_id uuid NOT NULL,
  first_seen_at timestamptz NOT NULL DEFAULT now(),
  last_pushed_at timestamptz,
  last_pulled_at timestamptz,
  deleted_at timestamptz,
  generation integer NOT NULL DEFAULT 0,
  scan_requested_generation integer,
  scan_requested_at timestamptz,
  PRIMARY KEY (registry_id, repository, digest)
);
CREATE INDEX images_recently_pulled ON images (last_pulled_at) WHERE deleted_at IS NULL;

-- Where each tag points now; a tag that moved leaves its old digest in `images`.
CREATE TABLE image_tags (
  registry_id uuid NOT NULL,
  repository text NOT NULL,
  tag text NOT NULL,
  digest text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (registry_id, repository, tag)
);
CREATE INDEX image_tags_digest ON image_tags (registry_id, repository, digest);

-- The recently-pulled rescan: when the next scheduled run is due, and every run.
CREATE TABLE rescan_schedule (
  name text PRIMARY KEY,
  next_run_at timestamptz NOT NULL
);
CREATE TABLE rescan_runs (
  id uuid PRIMARY KEY,
  reason text NOT NULL CHECK (reason IN ('schedule', 'request')),
  started_at timestamptz NOT NULL DEFAULT now(),
  pulled_since timestamptz NOT NULL,
  images integer NOT NULL
);
