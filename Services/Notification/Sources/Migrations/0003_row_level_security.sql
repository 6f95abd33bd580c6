-- Row-level security on notification's tenant tables (issue 6, "Isolation"): a query sees and writes only the rows
-- of the tenant its transaction set (`gantry.tenant_id`, see GantryRuntime/TenantScope.swift), or every row when
-- it set `gantry.system` = 'on' (the delivery worker's claim, deployment-wide alerts); without either, none.
-- FORCE because the service connects as the tables' owner, whom RLS otherwise exempts.
-- delivery_attempts has no tenant_id: it is secured through its delivery (the subquery on deliveries is itself
-- filtered by that table's policy). Not secured, having no tenant rows: inbox, outbox, schema_migrations.

ALTER TABLE channels ENABLE ROW LEVEL SECURITY;
ALTER TABLE channels FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON channels
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');

ALTER TABLE rules ENABLE ROW LEVEL SECURITY;
ALTER TABLE rules FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON rules
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');

ALTER TABLE alerts ENABLE ROW LEVEL SECURITY;
ALTER TABLE alerts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON alerts
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');

ALTER TABLE deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE deliveries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON deliveries
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');

ALTER TABLE image_states ENABLE ROW LEVEL SECURITY;
ALTER TABLE image_states FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON image_states
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');

ALTER TABLE episode_alerts ENABLE ROW LEVEL SECURITY;
ALTER TABLE episode_alerts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON episode_alerts
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');

ALTER TABLE delivery_attempts ENABLE ROW LEVEL SECURITY;
ALTER TABLE delivery_attempts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON delivery_attempts
  USING (EXISTS (SELECT FROM deliveries d WHERE d.id = delivery_attempts.delivery_id))
  WITH CHECK (EXISTS (SELECT FROM deliveries d WHERE d.id = delivery_attempts.delivery_id));
