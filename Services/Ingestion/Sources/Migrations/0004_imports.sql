-- Image imports (issue 5, "Import"): one row per job, durable across restarts. A job is queued, then leased
-- by a worker (status copying, lease_until renewed while it runs); a lease that ran out (a crashed or
-- restarted worker) makes the job available again. Source credentials are sealed with AES-256-GCM under
-- GANTRY_SECRET_KEY and cleared when the job ends.
CREATE TABLE imports (
  id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL,
  registry_id uuid NOT NULL,
  source text NOT NULL,
  source_base_url text NOT NULL,
  source_repository text NOT NULL,
  source_reference text NOT NULL,
  source_credentials_sealed text,
  target_repository text NOT NULL,
  target_tag text,
  status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'copying', 'done', 'failed')),
  reason text,
  digest text,
  media_type text,
  platforms jsonb NOT NULL DEFAULT '[]',
  bytes_copied bigint NOT NULL DEFAULT 0,
  blobs_mounted integer NOT NULL DEFAULT 0,
  blobs_copied integer NOT NULL DEFAULT 0,
  blobs_skipped integer NOT NULL DEFAULT 0,
  attempts integer NOT NULL DEFAULT 0,
  available_at timestamptz NOT NULL DEFAULT now(),
  lease_until timestamptz,
  scan_requested boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);
CREATE INDEX imports_due ON imports (available_at) WHERE status IN ('queued', 'copying');
CREATE INDEX imports_registry ON imports (registry_id, created_at DESC);
