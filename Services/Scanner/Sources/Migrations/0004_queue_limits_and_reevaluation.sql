-- Scan history gets re-evaluations (stored inventories re-matched after a knowledge-base update) and
-- cancelled jobs (the image was deleted); the queue gets what per-registry limits and the history need.
ALTER TABLE scan_jobs DROP CONSTRAINT scan_jobs_trigger_check;
ALTER TABLE scan_jobs ADD CONSTRAINT scan_jobs_trigger_check
  CHECK (trigger IN ('push', 'import', 'rescan', 'manual', 'reevaluation'));
ALTER TABLE scan_jobs DROP CONSTRAINT scan_jobs_status_check;
ALTER TABLE scan_jobs ADD CONSTRAINT scan_jobs_status_check
  CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'dead', 'cancelled'));
ALTER TABLE scan_jobs
  ADD COLUMN claimed_at timestamptz,
  ADD COLUMN outcome text CHECK (outcome IN ('assessed', 'notApplicable', 'reevaluated')),
  ADD COLUMN findings integer,
  ADD COLUMN kb_operation bigint;
-- Per-registry limits count running jobs and recent claims.
CREATE INDEX scan_jobs_running ON scan_jobs (registry_id) WHERE status = 'running';
CREATE INDEX scan_jobs_claimed ON scan_jobs (claimed_at, registry_id) WHERE claimed_at IS NOT NULL;
CREATE INDEX scan_jobs_image ON scan_jobs (registry_id, repository, digest);

-- kb_operation: the latest knowledge-base update operation the stored findings reflect.
ALTER TABLE inventories
  ADD COLUMN registry_host text,
  ADD COLUMN kb_operation bigint NOT NULL DEFAULT 0,
  ADD COLUMN packages_indexed boolean NOT NULL DEFAULT false,
  ADD COLUMN evaluated_at timestamptz;
CREATE INDEX inventories_image ON inventories (registry_id, repository, digest, scanned_at DESC);
CREATE INDEX inventories_scanned ON inventories (scanned_at);

-- Which (namespace, package) each stored inventory would be looked up by (Matcher.targets), so a
-- knowledge-base change finds the inventories it concerns without reading them all.
CREATE TABLE inventory_packages (
  scan_id uuid NOT NULL REFERENCES inventories (scan_id) ON DELETE CASCADE,
  namespace text NOT NULL,
  package_name text NOT NULL,
  PRIMARY KEY (scan_id, namespace, package_name)
);
CREATE INDEX inventory_packages_lookup ON inventory_packages (namespace, package_name);

-- Knowledge-base update operations re-evaluation has processed (the latest is the high-water mark;
-- every one is listed because operations can commit out of id order).
CREATE TABLE reevaluated_operations (
  operation bigint PRIMARY KEY,
  processed_at timestamptz NOT NULL DEFAULT now(),
  images_checked integer NOT NULL,
  images_changed integer NOT NULL
);

-- Images deleted from their registry: no more scans, reports or re-evaluation until pushed again.
CREATE TABLE deleted_images (
  registry_id uuid NOT NULL,
  repository text NOT NULL,
  digest text NOT NULL,
  tenant_id uuid NOT NULL,
  deleted_at timestamptz NOT NULL,
  PRIMARY KEY (registry_id, repository, digest)
);
