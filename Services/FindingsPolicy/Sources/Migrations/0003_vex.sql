-- VEX documents attached to a subscription (OpenVEX 0.2.0, CSAF 2.0 VEX). statements is the API's
-- [VexStatement] as JSON, parsed once at attach time; document is the posted JSON re-serialised with sorted keys.
CREATE TABLE vex_documents (
  id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL,
  subscription_id uuid NOT NULL,
  format text NOT NULL CHECK (format IN ('openvex', 'csaf')),
  document_id text NOT NULL,
  author text,
  version text,
  issued_at timestamptz,
  statements text NOT NULL,
  document text NOT NULL,
  attached_at timestamptz NOT NULL,
  attached_by text NOT NULL
);
CREATE INDEX vex_documents_subscription ON vex_documents (tenant_id, subscription_id, attached_at);

-- Every attach and detach: who, what, when, and how many images changed.
CREATE TABLE vex_audit (
  id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL,
  subscription_id uuid NOT NULL,
  vex_document_id uuid NOT NULL,
  action text NOT NULL CHECK (action IN ('attached', 'detached')),
  actor text NOT NULL,
  at timestamptz NOT NULL DEFAULT clock_timestamp(),
  document_id text NOT NULL,
  affected_images integer NOT NULL
);
CREATE INDEX vex_audit_subscription ON vex_audit (tenant_id, subscription_id, at DESC);

-- A finding suppressed by a VEX statement keeps the document's ID in exempt_rule_id (so that everything that
-- counts non-exempt findings treats both alike) and says so here, with the statement's justification.
ALTER TABLE findings ADD COLUMN exempt_vex_justification text;
