-- Slack and Teams incoming-webhook URLs are credentials (whoever has one can post to the channel): keep them sealed
-- like signing secrets. Such a channel has no signing secret, so `secret` takes the full URL (in clear here; the
-- delivery worker seals clear secrets at start-up, DeliveryWorker.sealLegacySecrets, since SQL has no key) and `url`
-- keeps only the masked form the API shows: scheme://host[:port] + the first path segment when more follow + '/****'
-- (Channel.maskedURL). Deliveries' targets get the same masked form.
WITH masked AS (
  SELECT id, url AS full_url,
         substring(url FROM '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]+') AS origin,
         array_remove(string_to_array(
           substring(url FROM '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]+([^?#]*)'), '/'), '') AS segments
  FROM channels
  WHERE type IN ('slack', 'teams') AND secret IS NULL AND url IS NOT NULL
)
UPDATE channels c
SET secret = m.full_url,
    url = m.origin || CASE WHEN cardinality(m.segments) >= 2 THEN '/' || m.segments[1] ELSE '' END || '/****'
FROM masked m
WHERE c.id = m.id;

UPDATE deliveries d SET target = c.url
FROM channels c
WHERE c.id = d.channel_id AND c.type IN ('slack', 'teams') AND d.target IS DISTINCT FROM c.url;
