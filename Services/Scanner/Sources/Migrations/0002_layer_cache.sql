-- What LayerReader kept from each layer, keyed by the layer blob's digest (verified when it was
-- downloaded) and the analyser version: a base layer shared by many images is read once.
CREATE TABLE layer_cache (
  layer_digest text NOT NULL,
  analyzer_version text NOT NULL,
  contents bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (layer_digest, analyzer_version)
);
