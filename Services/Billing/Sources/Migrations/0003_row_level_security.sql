-- Row-level security on billing's tenant tables (issue 6, "Isolation"): a query sees and writes only the rows
-- of the tenant its transaction set (`gantry.tenant_id`, see GantryRuntime/TenantScope.swift), or every row
-- when it set `gantry.system` = 'on'; without either it sees none. FORCE because the service connects as the
-- tables' owner, whom RLS otherwise exempts.
-- Not secured, having no tenant rows: prices (the cloud's price list, the same for every tenant), inbox and
-- outbox (runtime tables of message IDs; the inbox is claimed inside the tenant's transaction), schema_migrations.
ALTER TABLE charges ENABLE ROW LEVEL SECURITY;
ALTER TABLE charges FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON charges
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');

ALTER TABLE subscriptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE subscriptions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON subscriptions
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');

ALTER TABLE usage_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON usage_events
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');
