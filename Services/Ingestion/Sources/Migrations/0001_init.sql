-- Registry events as received; event IDs are the registry's, so a redelivered event is recorded once.
CREATE TABLE events (
  event_id text PRIMARY KEY,
  registry_id uuid NOT NULL,
  tenant_id uuid NOT NULL,
  action text NOT NULL,
  media_type text,
  repository text NOT NULL,
  digest text,
  tag text,
  received_at timestamptz NOT NULL DEFAULT now(),
  scan_requested boolean NOT NULL DEFAULT false
);
CREATE INDEX events_registry ON events (registry_id, received_at DESC);
