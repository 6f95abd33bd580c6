-- The current assessment of each image digest in a repository of a registry.
CREATE TABLE assessments (
  tenant_id uuid NOT NULL,
  subscription_id uuid NOT NULL,
  registry_id uuid NOT NULL,
  registry_host text NOT NULL,
  repository text NOT NULL,
  digest text NOT NULL,
  status text NOT NULL CHECK (status IN ('Healthy', 'Unhealthy', 'NotApplicable')),
  cause text,
  description text,
  operating_system text,
  findings text NOT NULL,
  notes text NOT NULL,
  scan_id uuid NOT NULL,
  time_generated timestamptz NOT NULL,
  PRIMARY KEY (subscription_id, registry_id, repository, digest)
);
CREATE INDEX assessments_tenant ON assessments (tenant_id, subscription_id, status);
