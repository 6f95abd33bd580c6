-- Plan history: every enable/disable with its time and actor; the subscription keeps the latest of each.
ALTER TABLE subscriptions ADD COLUMN enabled_at timestamptz;
ALTER TABLE subscriptions ADD COLUMN disabled_at timestamptz;
UPDATE subscriptions SET enabled_at = plan_changed_at WHERE plan_enabled;
UPDATE subscriptions SET disabled_at = plan_changed_at WHERE NOT plan_enabled AND plan_changed_at IS NOT NULL;
CREATE UNIQUE INDEX tenants_name ON tenants (lower(name));
CREATE UNIQUE INDEX subscriptions_tenant_name ON subscriptions (tenant_id, lower(name));

CREATE TABLE plan_history (
  id bigserial PRIMARY KEY,
  tenant_id uuid NOT NULL REFERENCES tenants (id),
  subscription_id uuid NOT NULL REFERENCES subscriptions (id),
  enabled boolean NOT NULL,
  actor text NOT NULL,
  at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX plan_history_subscription ON plan_history (subscription_id, id);

ALTER TABLE audit_log ADD COLUMN actor text NOT NULL DEFAULT 'anonymous';
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id);

-- Network access (public, privateTrusted, privateNoAccess); the credential kind and the key that sealed it.
ALTER TABLE registries ADD COLUMN network_access text NOT NULL DEFAULT 'public'
  CHECK (network_access IN ('public', 'privateTrusted', 'privateNoAccess'));
ALTER TABLE registries ADD COLUMN credential_kind text CHECK (credential_kind IN ('basic', 'token'));
ALTER TABLE registries ADD COLUMN key_id text;
UPDATE registries SET credential_kind = 'basic', key_id = 'default' WHERE credentials_sealed IS NOT NULL;
-- Crawl bookkeeping: a requested crawl (plan enabled, manual trigger), the one running, the last finished.
ALTER TABLE registries ADD COLUMN crawl_requested_at timestamptz;
ALTER TABLE registries ADD COLUMN crawl_started_at timestamptz;
ALTER TABLE registries ADD COLUMN last_crawl_at timestamptz;
ALTER TABLE registries ADD COLUMN onboarded_at timestamptz;

CREATE TABLE crawls (
  id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL REFERENCES tenants (id),
  registry_id uuid NOT NULL REFERENCES registries (id),
  started_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  status text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'skipped')),
  error text,
  repositories integer NOT NULL DEFAULT 0,
  tags integer NOT NULL DEFAULT 0,
  digests integer NOT NULL DEFAULT 0,
  pages integer NOT NULL DEFAULT 0,
  onboarding_scans integer NOT NULL DEFAULT 0
);
CREATE INDEX crawls_registry ON crawls (registry_id, started_at DESC);

-- Inventory: repositories, digests with their supportability, and the history of each tag's digests.
CREATE TABLE repositories (
  tenant_id uuid NOT NULL REFERENCES tenants (id),
  registry_id uuid NOT NULL REFERENCES registries (id),
  name text NOT NULL,
  first_seen_at timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz NOT NULL DEFAULT now(),
  removed_at timestamptz,
  PRIMARY KEY (registry_id, name)
);

CREATE TABLE digests (
  tenant_id uuid NOT NULL REFERENCES tenants (id),
  registry_id uuid NOT NULL REFERENCES registries (id),
  repository text NOT NULL,
  digest text NOT NULL,
  media_type text NOT NULL,
  classification text NOT NULL
    CHECK (classification IN ('supported', 'windows', 'noPackageDatabase', 'unsupportedManifest', 'notAnImage')),
  reason text NOT NULL,
  first_seen_at timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz NOT NULL DEFAULT now(),
  removed_at timestamptz,
  PRIMARY KEY (registry_id, repository, digest)
);

-- One row per (tag, digest) the tag has pointed to; current while superseded_at IS NULL. A superseded row stays
-- listed while its digest exists; removed_at marks the tag gone (or its digest deleted).
CREATE TABLE tag_history (
  id bigserial PRIMARY KEY,
  tenant_id uuid NOT NULL REFERENCES tenants (id),
  registry_id uuid NOT NULL REFERENCES registries (id),
  repository text NOT NULL,
  tag text NOT NULL,
  digest text NOT NULL,
  first_seen_at timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz NOT NULL DEFAULT now(),
  superseded_at timestamptz,
  removed_at timestamptz
);
CREATE UNIQUE INDEX tag_history_current ON tag_history (registry_id, repository, tag) WHERE superseded_at IS NULL AND removed_at IS NULL;
CREATE INDEX tag_history_tag ON tag_history (registry_id, repository, tag, id);
