-- Event IDs are unique only within the registry that sent them: two registries (of different tenants,
-- even) may send the same IDs, and one registry's events must not make another's look redelivered.
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD PRIMARY KEY (registry_id, event_id);
