/// Tables every service has in its own schema: the transactional outbox and the idempotency inbox
/// (ARCHITECTURE.md, "How the services talk").
enum RuntimeTables {
    static func migration(schema: String) -> Migration {
        Migration(version: 0, name: "runtime_outbox_inbox", sql: """
            CREATE TABLE outbox (
              id bigserial PRIMARY KEY,
              message_id text NOT NULL UNIQUE,
              destination text NOT NULL,
              path text NOT NULL,
              payload text NOT NULL,
              request_id text,
              traceparent text,
              attempts integer NOT NULL DEFAULT 0,
              next_attempt_at timestamptz NOT NULL DEFAULT now(),
              delivered_at timestamptz,
              dead_at timestamptz,
              last_error text,
              created_at timestamptz NOT NULL DEFAULT now()
            );
            CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE delivered_at IS NULL AND dead_at IS NULL;
            CREATE TABLE inbox (
              message_id text PRIMARY KEY,
              received_at timestamptz NOT NULL DEFAULT now()
            );
            """)
    }
}
