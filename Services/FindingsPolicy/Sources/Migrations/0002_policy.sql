-- What the scanner reported, kept apart from the status that policy derives from it, so that a rule
-- change can re-derive the status without the report.
ALTER TABLE assessments ADD COLUMN outcome text NOT NULL DEFAULT 'assessed' CHECK (outcome IN ('assessed', 'notApplicable'));
ALTER TABLE assessments ADD COLUMN not_applicable_reason text;
UPDATE assessments SET outcome = 'notApplicable', not_applicable_reason = cause WHERE status = 'NotApplicable';
-- The worst severity among the findings that count (not exempt); NULL when none count.
ALTER TABLE assessments ADD COLUMN worst_severity text;
-- False until the findings rows below exist for the row (rows from before this migration): the rule
-- expiry worker evaluates those.
ALTER TABLE assessments ADD COLUMN evaluated boolean NOT NULL DEFAULT false;

-- One row per finding of an assessed image: the sub-assessments. Rebuilt from the report on every report;
-- exempt_rule_id is rewritten whenever rules change.
CREATE TABLE findings (
  tenant_id uuid NOT NULL,
  subscription_id uuid NOT NULL,
  registry_id uuid NOT NULL,
  repository text NOT NULL,
  digest text NOT NULL,
  ordinal integer NOT NULL,
  sub_assessment_id uuid NOT NULL,
  vulnerability_id text NOT NULL,
  package_name text NOT NULL,
  severity text NOT NULL,
  patchable boolean NOT NULL,
  finding text NOT NULL,
  exempt_rule_id uuid,
  PRIMARY KEY (subscription_id, registry_id, repository, digest, ordinal),
  FOREIGN KEY (subscription_id, registry_id, repository, digest)
    REFERENCES assessments (subscription_id, registry_id, repository, digest) ON DELETE CASCADE
);
CREATE UNIQUE INDEX findings_sub_assessment ON findings (subscription_id, sub_assessment_id);
CREATE INDEX findings_digest ON findings (subscription_id, digest);

-- Disable rules. The criteria are JSON (the API's RuleCriteria): matching happens in the service.
CREATE TABLE disable_rules (
  id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL,
  subscription_id uuid NOT NULL,
  scope_kind text NOT NULL CHECK (scope_kind IN ('subscription', 'registry', 'repository', 'image')),
  registry_id uuid,
  repository text,
  digest text,
  criteria text NOT NULL,
  justification text NOT NULL CHECK (length(justification) > 0),
  expires_at timestamptz,
  -- Set by the expiry check once it has re-evaluated the rule's images.
  expired_at timestamptz,
  created_at timestamptz NOT NULL,
  created_by text NOT NULL,
  updated_at timestamptz NOT NULL,
  updated_by text NOT NULL
);
CREATE INDEX disable_rules_subscription ON disable_rules (tenant_id, subscription_id, created_at);
CREATE INDEX disable_rules_due ON disable_rules (expires_at) WHERE expired_at IS NULL AND expires_at IS NOT NULL;

-- Every change of a rule: who, what, when.
CREATE TABLE rule_audit (
  id uuid PRIMARY KEY,
  tenant_id uuid NOT NULL,
  subscription_id uuid NOT NULL,
  rule_id uuid NOT NULL,
  action text NOT NULL CHECK (action IN ('created', 'replaced', 'deleted', 'expired')),
  actor text NOT NULL,
  at timestamptz NOT NULL DEFAULT clock_timestamp(),
  rule text,
  affected_images integer NOT NULL
);
CREATE INDEX rule_audit_subscription ON rule_audit (tenant_id, subscription_id, at DESC);

-- Secure score history: a row whenever the score of a subscription (registry_id NULL) or registry changes.
CREATE TABLE secure_scores (
  id bigserial PRIMARY KEY,
  tenant_id uuid NOT NULL,
  subscription_id uuid NOT NULL,
  registry_id uuid,
  registry_host text,
  score double precision,
  healthy integer NOT NULL,
  unhealthy integer NOT NULL,
  not_applicable integer NOT NULL,
  unhealthy_weight double precision NOT NULL,
  computed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX secure_scores_scope ON secure_scores (tenant_id, subscription_id, registry_id, id DESC);

-- Which tags pointed at which digest, as scan reports of pushes and imports saw them. moved_at is set
-- when the tag was seen on another digest later (moved_to).
CREATE TABLE image_tags (
  tenant_id uuid NOT NULL,
  subscription_id uuid NOT NULL,
  registry_id uuid NOT NULL,
  repository text NOT NULL,
  tag text NOT NULL,
  digest text NOT NULL,
  first_seen timestamptz NOT NULL,
  last_seen timestamptz NOT NULL,
  moved_at timestamptz,
  moved_to text,
  PRIMARY KEY (subscription_id, registry_id, repository, tag, digest)
);
CREATE INDEX image_tags_digest ON image_tags (subscription_id, registry_id, repository, digest);
