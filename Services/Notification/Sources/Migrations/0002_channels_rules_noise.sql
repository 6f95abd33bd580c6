-- Channels replace webhooks: a webhook is a channel of type 'webhook', with the same id.
CREATE TABLE channels (
  id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL,
  subscription_id uuid NOT NULL,
  type text NOT NULL CHECK (type IN ('webhook', 'slack', 'teams', 'cloudevents', 'email')),
  name text NOT NULL,
  url text,
  -- NOTE: the HMAC secret must be usable to sign; sealing it at rest comes with key rotation.
  secret text,
  recipients text[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz,
  CHECK ((type = 'email') = (url IS NULL)),
  CHECK (type <> 'webhook' OR secret IS NOT NULL),
  CHECK (type <> 'email' OR cardinality(recipients) > 0)
);
CREATE INDEX channels_subscription ON channels (tenant_id, subscription_id) WHERE deleted_at IS NULL;
INSERT INTO channels (id, tenant_id, subscription_id, type, name, url, secret, created_at)
  SELECT id, tenant_id, subscription_id, 'webhook', url, url, secret, created_at FROM webhooks;

-- Rules: one alert kind, a severity floor, a failure threshold, the channels to notify.
CREATE TABLE rules (
  id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL,
  subscription_id uuid NOT NULL,
  name text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('imageUnhealthy', 'newFindings', 'scansFailing', 'feedsStale', 'registryUnreachable')),
  min_severity text,
  min_consecutive_failures integer CHECK (min_consecutive_failures > 0),
  channel_ids uuid[] NOT NULL CHECK (cardinality(channel_ids) > 0),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rules_subscription ON rules (tenant_id, subscription_id);
CREATE INDEX rules_kind ON rules (kind);

-- Alerts: what became of each (routed, suppressed by noise control, unrouted, recorded state signal).
-- A feedsStale alert fanned out to several subscriptions is one row per subscription ("<messageId>/<subscription>").
ALTER TABLE alerts
  ADD COLUMN outcome text NOT NULL DEFAULT 'routed' CHECK (outcome IN ('routed', 'suppressed', 'unrouted', 'recorded')),
  ADD COLUMN reason text,
  ADD COLUMN delivery_count integer NOT NULL DEFAULT 0,
  ADD COLUMN image_digest text,
  ADD COLUMN repository text,
  ADD COLUMN registry_host text;
CREATE INDEX alerts_subscription ON alerts (tenant_id, subscription_id, created_at DESC);

-- Deliveries go to channels; an e-mail channel has one delivery per recipient (target 'mailto:…').
ALTER TABLE deliveries DROP CONSTRAINT deliveries_webhook_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_webhook_id_alert_id_key;
ALTER TABLE deliveries RENAME COLUMN webhook_id TO channel_id;
ALTER TABLE deliveries
  ADD COLUMN target text,
  -- The lowest finding severity this channel's rules asked for; NULL means every finding.
  ADD COLUMN min_severity text,
  ADD COLUMN give_up_at timestamptz,
  ADD COLUMN leased_until timestamptz,
  ADD COLUMN last_attempt_at timestamptz;
UPDATE deliveries d SET target = c.url, give_up_at = d.created_at + interval '24 hours'
  FROM channels c WHERE c.id = d.channel_id;
ALTER TABLE deliveries
  ALTER COLUMN target SET NOT NULL,
  ALTER COLUMN give_up_at SET NOT NULL,
  ADD CONSTRAINT deliveries_channel_fkey FOREIGN KEY (channel_id) REFERENCES channels (id),
  ADD CONSTRAINT deliveries_once UNIQUE (channel_id, alert_id, target);
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_log ON deliveries (tenant_id, subscription_id, created_at DESC);
CREATE INDEX deliveries_channel_pending ON deliveries (channel_id) WHERE status = 'pending';
DROP TABLE webhooks;

-- Every attempt, for the delivery log.
CREATE TABLE delivery_attempts (
  delivery_id uuid NOT NULL REFERENCES deliveries (id),
  attempt integer NOT NULL,
  started_at timestamptz NOT NULL,
  duration_ms integer NOT NULL,
  outcome text NOT NULL CHECK (outcome IN ('delivered', 'failed', 'rejected')),
  status_code integer,
  error text,
  PRIMARY KEY (delivery_id, attempt)
);

-- Noise control per image: whether its last known state is unhealthy, and which findings were alerted
-- ("vulnerabilityId packageName installedVersion"). Keyed by "registryHost/repository@digest".
CREATE TABLE image_states (
  tenant_id uuid NOT NULL,
  subscription_id uuid NOT NULL,
  image text NOT NULL,
  unhealthy boolean NOT NULL,
  alerted_findings text[] NOT NULL DEFAULT '{}',
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, subscription_id, image)
);

-- Noise control per episode: a rule alerts once per (kind, subject, episode); the nil UUID stands for the default route.
CREATE TABLE episode_alerts (
  tenant_id uuid NOT NULL,
  subscription_id uuid NOT NULL,
  rule_id uuid NOT NULL,
  kind text NOT NULL,
  subject text NOT NULL,
  episode text NOT NULL,
  alert_id text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, subscription_id, rule_id, kind, subject, episode)
);
