-- Row-level security on discovery's tenant tables (issue 6, "Isolation"): a query sees and writes only the rows
-- of the tenant its transaction set (`gantry.tenant_id`, see GantryRuntime/TenantScope.swift), or every row
-- when it set `gantry.system` = 'on'; without either it sees none. FORCE because the service connects as the
-- tables' owner, whom RLS otherwise exempts.
-- Secured by tenant_id: subscriptions, registries, audit_log, plan_history, crawls, repositories, digests,
-- tag_history. tenants has no tenant_id: a tenant's row is its own (id), so its policy compares id.
-- Not secured, having no tenant rows: outbox and inbox (runtime tables of message IDs, written inside the
-- tenant's transaction), schema_migrations.
-- Unique and foreign-key checks bypass RLS by design, so a login server or tenant name stays unique across tenants.
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants
  USING (id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');

ALTER TABLE subscriptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE subscriptions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON subscriptions
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');

ALTER TABLE registries ENABLE ROW LEVEL SECURITY;
ALTER TABLE registries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON registries
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_log
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');

ALTER TABLE plan_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE plan_history FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON plan_history
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');

ALTER TABLE crawls ENABLE ROW LEVEL SECURITY;
ALTER TABLE crawls FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON crawls
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');

ALTER TABLE repositories ENABLE ROW LEVEL SECURITY;
ALTER TABLE repositories FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON repositories
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');

ALTER TABLE digests ENABLE ROW LEVEL SECURITY;
ALTER TABLE digests FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON digests
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');

ALTER TABLE tag_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE tag_history FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tag_history
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');
