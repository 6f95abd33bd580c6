-- The scan queue: taken with FOR UPDATE SKIP LOCKED; a running job holds a lease that its worker renews.
CREATE TABLE scan_jobs (
  id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL,
  subscription_id uuid NOT NULL,
  registry_id uuid NOT NULL,
  repository text NOT NULL,
  digest text NOT NULL,
  tag text,
  trigger text NOT NULL CHECK (trigger IN ('push', 'import', 'rescan', 'manual')),
  priority integer NOT NULL,
  status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'dead')),
  attempts integer NOT NULL DEFAULT 0,
  max_attempts integer NOT NULL DEFAULT 5,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  lease_until timestamptz,
  deadline_at timestamptz NOT NULL,
  error text,
  queued_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  finished_at timestamptz
);
-- At most one queued or running scan per image.
CREATE UNIQUE INDEX scan_jobs_one_active ON scan_jobs (registry_id, repository, digest)
  WHERE status IN ('queued', 'running');
CREATE INDEX scan_jobs_due ON scan_jobs (priority, queued_at) WHERE status IN ('queued', 'running');
CREATE INDEX scan_jobs_tenant ON scan_jobs (tenant_id, digest, queued_at DESC);

-- What each successful scan found in the image (the SBOM's source) and the matched report.
CREATE TABLE inventories (
  scan_id uuid PRIMARY KEY REFERENCES scan_jobs (id),
  tenant_id uuid NOT NULL,
  registry_id uuid NOT NULL,
  repository text NOT NULL,
  digest text NOT NULL,
  manifest_digest text NOT NULL,
  inventory text NOT NULL,
  findings text NOT NULL,
  namespace text,
  scanned_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inventories_digest ON inventories (tenant_id, digest, scanned_at DESC);

-- The knowledge base: one row per imported feed document, and its advisories.
CREATE TABLE feeds (
  source text PRIMARY KEY,
  namespace text NOT NULL,
  fingerprint text NOT NULL,
  advisories integer NOT NULL,
  imported_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE advisories (
  id bigserial PRIMARY KEY,
  source text NOT NULL REFERENCES feeds (source) ON DELETE CASCADE,
  namespace text NOT NULL,
  package_name text NOT NULL,
  vulnerability_id text NOT NULL,
  aliases text[] NOT NULL,
  fix_state text NOT NULL CHECK (fix_state IN ('fixed', 'notAffected', 'unfixed')),
  fixed_version text
);
CREATE INDEX advisories_lookup ON advisories (namespace, package_name);
