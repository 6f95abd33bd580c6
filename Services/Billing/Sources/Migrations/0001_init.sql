-- One charge per (subscription, image digest), ever: the unique key makes double billing impossible,
-- whatever retries or concurrent scanners do.
CREATE TABLE charges (
  id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL,
  subscription_id uuid NOT NULL,
  registry_id uuid NOT NULL,
  digest text NOT NULL,
  scan_id uuid NOT NULL,
  unit_price numeric(12, 4) NOT NULL,
  currency text NOT NULL,
  charged_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (subscription_id, digest)
);
CREATE INDEX charges_tenant ON charges (tenant_id, subscription_id, charged_at);
