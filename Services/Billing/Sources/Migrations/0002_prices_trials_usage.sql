-- Effective-dated prices per cloud type. Before a cloud's first row its profile's built-in price applies
-- (CloudProfile.unitPrice). Rows are only ever added, for the future, so a charge's price never depends on
-- when its scan was delivered.
CREATE TABLE prices (
  id uuid PRIMARY KEY,
  cloud text NOT NULL,
  currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  unit_price numeric(12, 4) NOT NULL CHECK (unit_price >= 0),
  effective_from timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (cloud, effective_from)
);

-- Billing's own record of a subscription: its free trial. The trial starts at the scan time of the first
-- usage billing records for the subscription (trial_starts_at, set once) and lasts trial_days.
CREATE TABLE subscriptions (
  subscription_id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL,
  trial_days integer NOT NULL CHECK (trial_days BETWEEN 0 AND 3650),
  trial_starts_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- A charge records when the image was scanned, the list price in force then, and whether it fell in the
-- trial (unit_price 0). Charges from before this migration were recorded at list price when received.
ALTER TABLE charges
  ADD COLUMN registry_host text,
  ADD COLUMN scanned_at timestamptz,
  ADD COLUMN list_price numeric(12, 4),
  ADD COLUMN in_trial boolean NOT NULL DEFAULT false;
UPDATE charges SET scanned_at = charged_at, list_price = unit_price;
ALTER TABLE charges ALTER COLUMN scanned_at SET NOT NULL, ALTER COLUMN list_price SET NOT NULL;
DROP INDEX charges_tenant;
CREATE INDEX charges_by_scan_time ON charges (tenant_id, subscription_id, scanned_at);

-- Every scan reported to billing, with what billing did with it: the ledger behind usage reports.
-- message_id is the scanner's outbox message ID, so a redelivery finds its original row.
CREATE TABLE usage_events (
  message_id text PRIMARY KEY,
  tenant_id uuid NOT NULL,
  subscription_id uuid NOT NULL,
  registry_id uuid NOT NULL,
  registry_host text,
  digest text NOT NULL,
  scan_id uuid NOT NULL,
  trigger text NOT NULL,
  outcome text NOT NULL,
  plan_enabled boolean NOT NULL,
  scanned_at timestamptz NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  disposition text NOT NULL
    CHECK (disposition IN ('charged', 'trial', 'alreadyCharged', 'freeTrigger', 'notAssessed', 'planDisabled')),
  charge_id uuid REFERENCES charges (id)
);
CREATE INDEX usage_events_by_scan_time ON usage_events (tenant_id, subscription_id, scanned_at);
