-- A registry the crawler could not reach (connection or TLS failure, 5xx after the client's retries), since when:
-- the episode of its registryUnreachable alert (notification.yaml, "Alert kinds"), as scanner keeps for scans
-- (scanner migration 5). The row goes when a crawl of the registry succeeds.
CREATE TABLE unreachable_registries (
  registry_id uuid PRIMARY KEY REFERENCES registries (id) ON DELETE CASCADE,
  tenant_id uuid NOT NULL,
  since timestamptz NOT NULL,
  last_error text NOT NULL
);

-- Row-level security as every tenant table (migration 3).
ALTER TABLE unreachable_registries ENABLE ROW LEVEL SECURITY;
ALTER TABLE unreachable_registries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON unreachable_registries
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');
