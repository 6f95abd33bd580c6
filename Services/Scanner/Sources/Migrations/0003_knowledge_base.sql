-- The knowledge base for every feed kind (replaces the Alpine-only feeds/advisories tables; their
-- data is re-imported from the feeds).
DROP TABLE advisories;
DROP TABLE feeds;

-- One row per imported feed document (its source), with the fingerprint of its normalised content.
CREATE TABLE kb_feeds (
  source text PRIMARY KEY,
  kind text NOT NULL,
  fingerprint text NOT NULL,
  namespaces text[] NOT NULL,
  vulnerabilities integer NOT NULL,
  affected integer NOT NULL,
  kev integer NOT NULL,
  epss integer NOT NULL,
  last_operation bigint NOT NULL,
  imported_at timestamptz NOT NULL DEFAULT now()
);

-- Every import that changed something is an update operation; unchanged imports write nothing.
CREATE TABLE kb_update_operations (
  id bigserial PRIMARY KEY,
  source text NOT NULL,
  kind text NOT NULL,
  fingerprint text NOT NULL,
  added integer NOT NULL,
  removed integer NOT NULL,
  finished_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE kb_vulnerabilities (
  source text NOT NULL REFERENCES kb_feeds (source) ON DELETE CASCADE,
  id text NOT NULL,
  aliases text[] NOT NULL,
  record jsonb NOT NULL,
  PRIMARY KEY (source, id)
);
CREATE INDEX kb_vulnerabilities_id ON kb_vulnerabilities (id);
CREATE INDEX kb_vulnerabilities_aliases ON kb_vulnerabilities USING gin (aliases);

-- One row per AffectedPackage; row_hash identifies its content for change lists.
CREATE TABLE kb_affected (
  source text NOT NULL REFERENCES kb_feeds (source) ON DELETE CASCADE,
  namespace text NOT NULL,
  package_name text NOT NULL,
  vulnerability_id text NOT NULL,
  row_hash text NOT NULL,
  entry jsonb NOT NULL
);
CREATE INDEX kb_affected_lookup ON kb_affected (namespace, package_name);
CREATE INDEX kb_affected_source ON kb_affected (source, row_hash);

-- What each update operation changed: rows added and removed (a changed row is both), by package.
CREATE TABLE kb_changes (
  operation bigint NOT NULL REFERENCES kb_update_operations (id) ON DELETE CASCADE,
  change text NOT NULL CHECK (change IN ('added', 'removed')),
  namespace text NOT NULL,
  package_name text NOT NULL,
  vulnerability_id text NOT NULL
);
CREATE INDEX kb_changes_operation ON kb_changes (operation);

CREATE TABLE kb_kev (
  source text NOT NULL REFERENCES kb_feeds (source) ON DELETE CASCADE,
  cve text NOT NULL,
  entry jsonb NOT NULL,
  PRIMARY KEY (source, cve)
);
CREATE INDEX kb_kev_cve ON kb_kev (cve);

CREATE TABLE kb_epss (
  source text NOT NULL REFERENCES kb_feeds (source) ON DELETE CASCADE,
  cve text NOT NULL,
  epss double precision NOT NULL,
  percentile double precision NOT NULL,
  score_date text,
  PRIMARY KEY (source, cve)
);
CREATE INDEX kb_epss_cve ON kb_epss (cve);
