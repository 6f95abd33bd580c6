-- Row-level security on findings-policy's tenant tables (issue 6, "Isolation"): a query sees and writes only the
-- rows of the tenant its transaction set (`gantry.tenant_id`, see GantryRuntime/TenantScope.swift), or every row
-- when it set `gantry.system` = 'on' (the rule expiry worker's scans across tenants); without either it sees none.
-- FORCE because the service connects as the tables' owner, whom RLS otherwise exempts.
-- Every table holding a tenant's data has tenant_id. Not secured, having no tenant rows: inbox and outbox
-- (runtime tables of message IDs and queued messages; the inbox is claimed inside the tenant's transaction, the
-- outbox relay sends for every tenant) and schema_migrations.

ALTER TABLE assessments ENABLE ROW LEVEL SECURITY;
ALTER TABLE assessments FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON assessments
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');

ALTER TABLE disable_rules ENABLE ROW LEVEL SECURITY;
ALTER TABLE disable_rules FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON disable_rules
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');

ALTER TABLE findings ENABLE ROW LEVEL SECURITY;
ALTER TABLE findings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON findings
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

ALTER TABLE rule_audit ENABLE ROW LEVEL SECURITY;
ALTER TABLE rule_audit FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON rule_audit
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');

ALTER TABLE secure_scores ENABLE ROW LEVEL SECURITY;
ALTER TABLE secure_scores FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON secure_scores
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');

ALTER TABLE vex_audit ENABLE ROW LEVEL SECURITY;
ALTER TABLE vex_audit FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON vex_audit
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');

ALTER TABLE vex_documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE vex_documents FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON vex_documents
  USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
         OR current_setting('gantry.system', true) = 'on')
  WITH CHECK (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
              OR current_setting('gantry.system', true) = 'on');
