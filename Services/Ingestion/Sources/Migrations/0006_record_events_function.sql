-- Webhook intake's group commit in one round trip (issue 5, "Benchmark"): the events of many requests, hence
-- of many registries and tenants, are recorded by one call of this function rather than a transaction of
-- BEGIN, set_config, INSERT and COMMIT. It sees every tenant's rows, as `withSystemAccess` would, by setting
-- `gantry.system` for the duration of the call only (a function's SET clause would need a superuser for a
-- custom parameter), then restoring the caller's value. Each row's tenant is the caller's, taken from its
-- registry as discovery states it, never from the webhook. It returns the (registry, event ID) pairs that were
-- new: an ID already recorded for its registry, or repeated earlier in the arrays, is a duplicate and skipped.
-- Empty strings stand for absent media type, digest, tag and time.
CREATE FUNCTION record_events(registries uuid[], tenants uuid[], event_ids text[], sources text[], actions text[],
                              media_types text[], repositories text[], digests text[], tags text[], times text[])
RETURNS TABLE (recorded_registry uuid, recorded_event text)
LANGUAGE plpgsql
AS $$
DECLARE
  caller_setting text := current_setting('gantry.system', true);
BEGIN
  PERFORM set_config('gantry.system', 'on', true);
  RETURN QUERY
    INSERT INTO ingestion.events AS e (registry_id, tenant_id, event_id, source, action, media_type, repository,
                                       digest, tag, occurred_at)
    SELECT r, t, i, s, a, NULLIF(m, ''), p, NULLIF(d, ''), NULLIF(g, ''), NULLIF(o, '')::timestamptz
    FROM unnest(registries, tenants, event_ids, sources, actions, media_types, repositories, digests, tags, times)
      WITH ORDINALITY AS x(r, t, i, s, a, m, p, d, g, o, n)
    ORDER BY n
    ON CONFLICT (registry_id, event_id) DO NOTHING
    RETURNING e.registry_id, e.event_id;
  PERFORM set_config('gantry.system', coalesce(caller_setting, ''), true);
END
$$;
