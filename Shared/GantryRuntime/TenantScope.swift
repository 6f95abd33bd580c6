import Foundation
import Logging
import PostgresNIO

/// The per-transaction settings that PostgreSQL row-level security policies read (issue 6, "Isolation";
/// PostgreSQL documentation, "Row Security Policies" and `set_config`).
///
/// Every tenant table (one with a `tenant_id` column) of a service has, in one of its migrations:
/// ```sql
/// ALTER TABLE t ENABLE ROW LEVEL SECURITY;
/// ALTER TABLE t FORCE ROW LEVEL SECURITY;   -- services connect as the tables' owner, who bypasses RLS otherwise
/// CREATE POLICY tenant_isolation ON t
///   USING (tenant_id = NULLIF(current_setting('gantry.tenant_id', true), '')::uuid
///          OR current_setting('gantry.system', true) = 'on')
///   WITH CHECK (same expression);
/// ```
/// so a query sees and writes only the rows of the tenant set for its transaction, and none without a
/// setting. The database role must not be a superuser nor have `BYPASSRLS` (`scripts/postgres.sh`).
/// Both settings are transaction-local (`set_config(…, true)`): they end at COMMIT or ROLLBACK, so a pooled
/// connection never carries one request's tenant into the next.
public enum TenantScope {
    /// The setting holding the tenant's UUID (lowercase text) for the current transaction.
    public static let tenantSetting = "gantry.tenant_id"
    /// The setting that, when `on`, lets the current transaction see and write every tenant's rows.
    public static let systemSetting = "gantry.system"
}

extension PostgresClient {
    /// Runs `body` in a transaction that sees and writes only `tenantID`'s rows of row-level-secured tables.
    ///
    /// Use it for everything done on behalf of one tenant: request handlers with the tenant from the route
    /// (`/v1/tenants/{tenantId}/…`) or from an internal message's body, and per-tenant steps of workers.
    /// A row inserted or updated for another tenant fails the policies' `WITH CHECK` (SQLSTATE 42501,
    /// `insufficient_privilege`); other tenants' rows are invisible, as if absent.
    /// - Throws: what `body` throws, unwrapped from postgres-nio's `PostgresTransactionError` when the
    ///   rollback succeeded (so a `ProblemError` reaches the client as its status); database errors otherwise.
    public func withTenant<Result: Sendable>(_ tenantID: UUID, logger: Logger, file: String = #file, line: Int = #line,
                                             _ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        try await scoped(setting: TenantScope.tenantSetting, value: tenantID.uuidString.lowercased(), logger: logger,
                         file: file, line: line, body)
    }

    /// Runs `body` in a transaction that sees and writes every tenant's rows of row-level-secured tables.
    ///
    /// Only for work that is legitimately cross-tenant and not driven by one tenant's request: outbox relays,
    /// schedulers and workers claiming the next job of any tenant (which then should switch to `withTenant`
    /// for the job itself), operator reports over all tenants, migrations. Never for a request handler that
    /// knows its tenant.
    /// - Throws: as `withTenant`.
    public func withSystemAccess<Result: Sendable>(logger: Logger, file: String = #file, line: Int = #line,
                                                   _ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        try await scoped(setting: TenantScope.systemSetting, value: "on", logger: logger, file: file, line: line, body)
    }

    private func scoped<Result: Sendable>(setting: String, value: String, logger: Logger, file: String, line: Int,
                                          _ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        do {
            return try await withTransaction(logger: logger, file: file, line: line) { connection in
                // `true`: local to this transaction, like SET LOCAL (which cannot take bind parameters).
                try await connection.query("SELECT set_config(\(setting), \(value), true)", logger: logger)
                return try await body(connection)
            }
        } catch let error as PostgresTransactionError {
            if let closureError = error.closureError, error.rollbackError == nil { throw closureError }
            throw error
        }
    }
}
