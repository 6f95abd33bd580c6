-- Row-level security on the scanner's tenant tables (issue 6, "Isolation"): a query sees and writes only the rows
-- of the tenant its transaction set (`gantry.tenant_id`, see GantryRuntime/TenantScope.swift), or every row
-- when it set `gantry.system` = 'on' (the queue's claims, re-evaluation); without either it sees none. FORCE
-- because the service connects as the tables' owner, whom RLS otherwise exempts.
-- Secured: scan_jobs, inventories, deleted_images, and the three tables that held a tenant's rows without saying
-- whose, which get tenant_id here: inventory_packages (from its inventory), scan_failure_streaks and
-- unreachable_registries (from the registry's scan jobs; a row no job explains is a stale alert signal and goes).
-- Not secured, holding no tenant data: the knowledge base (kb_*: public vulnerability feeds, the same for every
-- tenant), reevaluated_operations (knowledge-base operation numbers), layer_cache (analysis of a layer blob by
-- its digest, shared like the blob itself; only a scan that already pulled the layer looks it up), outbox and
-- inbox (runtime tables of messages, written inside the tenant's transaction), schema_migrations.
ALTER TABLE inventory_packages ADD COLUMN tenant_id uuid;
UPDATE inventory_packages p SET tenant_id = i.tenant_id FROM inventories i WHERE i.scan_id = p.scan_id;
ALTER TABLE inventory_packages ALTER COLUMN tenant_id SET NOT NULL;

ALTER TABLE scan_failure_streaks ADD COLUMN tenant_id uuid;
UPDATE scan_failure_streaks s
SET tenant_id = (SELECT j.tenant_id FROM scan_jobs j WHERE j.registry_id = s.registry_id ORDER BY j.queued_at DESC LIMIT 1);
DELETE FROM scan_failure_streaks WHERE tenant_id IS NULL;
ALTER TABLE scan_failure_streaks ALTER COLUMN tenant_id SET NOT NULL;

ALTER TABLE unreachable_registries ADD COLUMN tenant_id uuid;
UPDATE unreachable_registries u
SET tenant_id = (SELECT j.tenant_id FROM scan_jobs j WHERE j.registry_id = u.registry_id ORDER BY j.queued_at DESC LIMIT 1);
DELETE FROM unreachable_registries WHERE tenant_id IS NULL;
ALTER TABLE unreachable_registries ALTER COLUMN tenant_id SET NOT NULL;

ALTER TABLE scan_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE scan_jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON scan_jobs
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');

ALTER TABLE inventories ENABLE ROW LEVEL SECURITY;
ALTER TABLE inventories FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON inventories
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');

ALTER TABLE deleted_images ENABLE ROW LEVEL SECURITY;
ALTER TABLE deleted_images FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON deleted_images
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');

ALTER TABLE inventory_packages ENABLE ROW LEVEL SECURITY;
ALTER TABLE inventory_packages FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON inventory_packages
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');

ALTER TABLE scan_failure_streaks ENABLE ROW LEVEL SECURITY;
ALTER TABLE scan_failure_streaks FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON scan_failure_streaks
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');

ALTER TABLE unreachable_registries ENABLE ROW LEVEL SECURITY;
ALTER TABLE unreachable_registries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON unreachable_registries
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');
