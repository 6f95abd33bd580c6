CREATE TABLE tenants (
  id uuid PRIMARY KEY,
  name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE subscriptions (
  id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL REFERENCES tenants (id),
  name text NOT NULL,
  cloud_type text NOT NULL CHECK (cloud_type IN ('commercial', 'government', 'china')),
  plan_enabled boolean NOT NULL DEFAULT false,
  plan_changed_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_tenant ON subscriptions (tenant_id);

-- Credentials are sealed with AES-256-GCM (nonce || ciphertext || tag, base64); never stored in clear.
CREATE TABLE registries (
  id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL REFERENCES tenants (id),
  subscription_id uuid NOT NULL REFERENCES subscriptions (id),
  login_server text NOT NULL UNIQUE,
  insecure boolean NOT NULL DEFAULT false,
  credentials_sealed text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX registries_subscription ON registries (tenant_id, subscription_id);

CREATE TABLE audit_log (
  id bigserial PRIMARY KEY,
  tenant_id uuid NOT NULL,
  action text NOT NULL,
  subject text NOT NULL,
  detail text NOT NULL DEFAULT '',
  at timestamptz NOT NULL DEFAULT now()
);
