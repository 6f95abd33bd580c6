-- Row-level security on ingestion's tenant tables (issue 6, "Isolation"): a query sees and writes only the rows
-- of the tenant its transaction set (`gantry.tenant_id`, see GantryRuntime/TenantScope.swift), or every row when
-- it set `gantry.system` = 'on' (webhook intake's group commit, the event processor, the import claim and the
-- rescan scheduler work across tenants); without either it sees none. FORCE because the service connects as the
-- tables' owner, whom RLS otherwise exempts.
-- Not secured, having no tenant rows: rescan_schedule and rescan_runs (the one deployment-wide schedule and its
-- runs' counts), inbox and outbox (runtime tables of message IDs and queued messages, relayed for every tenant)
-- and schema_migrations.

-- image_tags rows belong to the tenant of their registry but had no tenant_id: take it from the registry's
-- images (a tag is recorded with its image), else its events; a tag of neither cannot be attributed and goes.
ALTER TABLE image_tags ADD COLUMN tenant_id uuid;
UPDATE image_tags t SET tenant_id = COALESCE(
  (SELECT i.tenant_id FROM images i WHERE i.registry_id = t.registry_id LIMIT 1),
  (SELECT e.tenant_id FROM events e WHERE e.registry_id = t.registry_id LIMIT 1));
DELETE FROM image_tags WHERE tenant_id IS NULL;
ALTER TABLE image_tags ALTER COLUMN tenant_id SET NOT NULL;

ALTER TABLE events ENABLE ROW LEVEL SECURITY;
ALTER TABLE events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON events
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');

ALTER TABLE image_tags ENABLE ROW LEVEL SECURITY;
ALTER TABLE image_tags FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON image_tags
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');

ALTER TABLE images ENABLE ROW LEVEL SECURITY;
ALTER TABLE images FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON images
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');

ALTER TABLE imports ENABLE ROW LEVEL SECURITY;
ALTER TABLE imports FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON imports
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');

ALTER TABLE webhook_secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_secrets FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_secrets
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');
