-- Event retention (EventRetention.swift): processed events older than the retention period are deleted in
-- chunks. A BRIN index on received_at finds the old block ranges of this append-ordered table at almost no cost
-- per insert, where a B-tree would add a third index write to every webhook event.
CREATE INDEX events_received_brin ON events USING brin (received_at);
