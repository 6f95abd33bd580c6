import Foundation
import GantryModel
import GantryRuntime
import Logging
import PostgresNIO

/// A subscription row.
struct SubscriptionRecord: Sendable {
    var id: UUID
    var tenantID: UUID
    var name: String
    var cloudType: CloudType
    var planEnabled: Bool
    var planChangedAt: Date?
    var enabledAt: Date?
    var disabledAt: Date?
    var createdAt: Date
}

/// How the trusted service may reach a registry (issue 6, item 2).
enum NetworkAccess: String, Sendable {
    case `public`, privateTrusted, privateNoAccess

    /// Why a registry is not applicable, or nil when it is crawled, scanned and billed normally.
    var notApplicableReason: String? {
        self == .privateNoAccess
            ? "the registry is private and does not grant access to the trusted service: it is never crawled, scanned or billed"
            : nil
    }
}

/// A registry row; `credentialsSealed` is the AES-GCM box (under key `keyID`), never the clear text.
struct RegistryRecord: Sendable {
    var id: UUID
    var tenantID: UUID
    var subscriptionID: UUID
    var loginServer: String
    var insecure: Bool
    var credentialsSealed: String?
    var credentialKind: String?
    var keyID: String?
    var networkAccess: NetworkAccess
    var lastCrawlAt: Date?
    var onboardedAt: Date?
    var createdAt: Date
}

/// One audit log row.
struct AuditRecord: Sendable {
    var id: Int64
    var actor: String
    var action: String
    var subject: String
    var detail: String
    var at: Date
}

/// Discovery's persistence in schema `discovery`. Every tenant-facing method takes the tenant it works for and runs
/// in that tenant's transaction (`withTenant`: row-level security, migration 3); only the internal lookups across
/// tenants (by registry ID or login server, key rotation) use `withSystemAccess`.
struct PostgresDiscoveryStore: Sendable {
    let database: PostgresClient
    let logger: Logger

    /// Which rows a query may see: one tenant's, or every tenant's (internal lookups, the crawl scheduler).
    enum Scope: Sendable {
        case tenant(UUID)
        case system
    }

    /// Runs `body` in a transaction scoped to `scope`.
    func scoped<Result: Sendable>(_ scope: Scope, _ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        switch scope {
        case .tenant(let tenantID): try await database.withTenant(tenantID, logger: logger, body)
        case .system: try await database.withSystemAccess(logger: logger, body)
        }
    }

    /// Inserts a tenant; nil when the name (case-insensitive) is taken.
    func createTenant(id: UUID, name: String) async throws -> Date? {
        let logger = self.logger
        return try await scoped(.tenant(id)) { connection in
            let rows = try await connection.query(
                "INSERT INTO discovery.tenants (id, name) VALUES (\(id), \(name)) ON CONFLICT DO NOTHING RETURNING created_at",
                logger: logger)
            for try await createdAt in rows.decode(Date.self) { return createdAt }
            return nil
        }
    }

    func tenantExists(_ tenantID: UUID) async throws -> Bool {
        let logger = self.logger
        return try await scoped(.tenant(tenantID)) { connection in
            let rows = try await connection.query("SELECT 1 FROM discovery.tenants WHERE id = \(tenantID)", logger: logger)
            for try await _ in rows { return true }
            return false
        }
    }

    /// Inserts a subscription and its audit row in one transaction; nil when the tenant has one of that name.
    func createSubscription(tenantID: UUID, id: UUID, name: String, cloudType: CloudType,
                            actor: String) async throws -> SubscriptionRecord? {
        let logger = self.logger
        return try await scoped(.tenant(tenantID)) { connection in
            let rows = try await connection.query("""
                INSERT INTO discovery.subscriptions (id, tenant_id, name, cloud_type)
                VALUES (\(id), \(tenantID), \(name), \(cloudType.rawValue)) ON CONFLICT DO NOTHING RETURNING id
                """, logger: logger)
            var inserted = false
            for try await _ in rows { inserted = true }
            guard inserted else { return nil }
            try await Self.audit(connection, tenantID: tenantID, actor: actor, action: "subscription.create",
                                 subject: id.uuidString.lowercased(), detail: "cloud=\(cloudType.rawValue)", logger: logger)
            guard let record = try await Self.subscription(connection, tenantID: tenantID, id: id, logger: logger) else {
                throw ProblemError.internal("subscription was not created")
            }
            return record
        }
    }

    func subscription(tenantID: UUID, id: UUID) async throws -> SubscriptionRecord? {
        let logger = self.logger
        return try await scoped(.tenant(tenantID)) { connection in
            try await Self.subscription(connection, tenantID: tenantID, id: id, logger: logger)
        }
    }

    /// The subscription with this ID in any tenant, or nil: the internal ownership lookup (service callers
    /// learn the owning tenant from the record, so the query cannot be scoped to one).
    func subscription(id: UUID) async throws -> SubscriptionRecord? {
        let logger = self.logger
        return try await scoped(.system) { connection in
            let rows = try await connection.query("SELECT tenant_id FROM discovery.subscriptions WHERE id = \(id)", logger: logger)
            var owner: UUID?
            for try await tenantID in rows.decode(UUID.self) { owner = tenantID }
            guard let owner else { return nil }
            return try await Self.subscription(connection, tenantID: owner, id: id, logger: logger)
        }
    }

    static func subscription(_ connection: PostgresConnection, tenantID: UUID, id: UUID,
                             logger: Logger) async throws -> SubscriptionRecord? {
        let rows = try await connection.query("""
            SELECT id, tenant_id, name, cloud_type, plan_enabled, plan_changed_at, enabled_at, disabled_at, created_at
            FROM discovery.subscriptions WHERE tenant_id = \(tenantID) AND id = \(id)
            """, logger: logger)
        for try await (id, tenant, name, cloud, enabled, changed, enabledAt, disabledAt, created) in rows.decode(
            (UUID, UUID, String, String, Bool, Date?, Date?, Date?, Date).self) {
            return SubscriptionRecord(id: id, tenantID: tenant, name: name, cloudType: CloudType(rawValue: cloud) ?? .commercial,
                                      planEnabled: enabled, planChangedAt: changed, enabledAt: enabledAt,
                                      disabledAt: disabledAt, createdAt: created)
        }
        return nil
    }

    /// Sets the plan state; returns nil when the subscription does not exist for the tenant. A change is
    /// timestamped (enabled_at or disabled_at) and recorded in the plan history; enabling asks for a crawl
    /// of the subscription's registries. Every call is audited.
    func setPlan(tenantID: UUID, subscriptionID: UUID, enabled: Bool, actor: String) async throws -> SubscriptionRecord? {
        let logger = self.logger
        return try await scoped(.tenant(tenantID)) { connection in
            let rows = try await connection.query("""
                WITH previous AS (
                  SELECT plan_enabled FROM discovery.subscriptions
                  WHERE tenant_id = \(tenantID) AND id = \(subscriptionID) FOR UPDATE)
                UPDATE discovery.subscriptions s
                SET plan_changed_at = CASE WHEN p.plan_enabled <> \(enabled) THEN now() ELSE s.plan_changed_at END,
                    enabled_at = CASE WHEN p.plan_enabled <> \(enabled) AND \(enabled) THEN now() ELSE s.enabled_at END,
                    disabled_at = CASE WHEN p.plan_enabled <> \(enabled) AND NOT \(enabled) THEN now() ELSE s.disabled_at END,
                    plan_enabled = \(enabled)
                FROM previous p
                WHERE s.tenant_id = \(tenantID) AND s.id = \(subscriptionID) RETURNING p.plan_enabled <> \(enabled)
                """, logger: logger)
            var changed: Bool?
            for try await value in rows.decode(Bool.self) { changed = value }
            guard let changed else { return nil }
            if changed {
                try await connection.query("""
                    INSERT INTO discovery.plan_history (tenant_id, subscription_id, enabled, actor)
                    VALUES (\(tenantID), \(subscriptionID), \(enabled), \(actor))
                    """, logger: logger)
                if enabled {
                    try await connection.query("""
                        UPDATE discovery.registries SET crawl_requested_at = now()
                        WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID)
                        """, logger: logger)
                }
            }
            try await Self.audit(connection, tenantID: tenantID, actor: actor, action: enabled ? "plan.enable" : "plan.disable",
                                 subject: subscriptionID.uuidString.lowercased(), detail: changed ? "" : "unchanged", logger: logger)
            return try await Self.subscription(connection, tenantID: tenantID, id: subscriptionID, logger: logger)
        }
    }

    /// The plan changes of a subscription, oldest first.
    func planHistory(tenantID: UUID, subscriptionID: UUID) async throws -> [(enabled: Bool, actor: String, at: Date)] {
        let logger = self.logger
        return try await scoped(.tenant(tenantID)) { connection in
            let rows = try await connection.query("""
                SELECT enabled, actor, at FROM discovery.plan_history
                WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID) ORDER BY id
                """, logger: logger)
            var result: [(enabled: Bool, actor: String, at: Date)] = []
            for try await (enabled, actor, at) in rows.decode((Bool, String, Date).self) { result.append((enabled, actor, at)) }
            return result
        }
    }

    /// The tenant's audit log, newest first.
    func auditLog(tenantID: UUID, limit: Int) async throws -> [AuditRecord] {
        let logger = self.logger
        return try await scoped(.tenant(tenantID)) { connection in
            let rows = try await connection.query("""
                SELECT id, actor, action, subject, detail, at FROM discovery.audit_log
                WHERE tenant_id = \(tenantID) ORDER BY id DESC LIMIT \(limit)
                """, logger: logger)
            var result: [AuditRecord] = []
            for try await (id, actor, action, subject, detail, at) in rows.decode((Int64, String, String, String, String, Date).self) {
                result.append(AuditRecord(id: id, actor: actor, action: action, subject: subject, detail: detail, at: at))
            }
            return result
        }
    }

    /// Inserts a registry and its audit row; returns nil when the login server is already registered.
    func createRegistry(_ record: RegistryRecord, actor: String) async throws -> RegistryRecord? {
        let logger = self.logger
        return try await scoped(.tenant(record.tenantID)) { connection in
            let rows = try await connection.query("""
                INSERT INTO discovery.registries (id, tenant_id, subscription_id, login_server, insecure, credentials_sealed,
                                                  credential_kind, key_id, network_access, crawl_requested_at)
                VALUES (\(record.id), \(record.tenantID), \(record.subscriptionID), \(record.loginServer),
                        \(record.insecure), \(record.credentialsSealed), \(record.credentialKind), \(record.keyID),
                        \(record.networkAccess.rawValue), now())
                ON CONFLICT (login_server) DO NOTHING RETURNING created_at
                """, logger: logger)
            var created: Date?
            for try await date in rows.decode(Date.self) { created = date }
            guard let created else { return nil }
            try await Self.audit(connection, tenantID: record.tenantID, actor: actor, action: "registry.register",
                                 subject: record.id.uuidString.lowercased(),
                                 detail: "\(record.loginServer) networkAccess=\(record.networkAccess.rawValue)", logger: logger)
            var result = record
            result.createdAt = created
            return result
        }
    }

    func registries(tenantID: UUID, subscriptionID: UUID) async throws -> [RegistryRecord] {
        try await selectRegistries(.tenant(tenantID), "WHERE tenant_id = $1 AND subscription_id = $2 ORDER BY created_at",
                                   binds: [tenantID, subscriptionID])
    }

    /// A registry of a tenant's subscription, or nil.
    func registry(tenantID: UUID, subscriptionID: UUID, id: UUID) async throws -> RegistryRecord? {
        try await selectRegistries(.tenant(tenantID), "WHERE tenant_id = $1 AND subscription_id = $2 AND id = $3",
                                   binds: [tenantID, subscriptionID, id]).first
    }

    /// Internal lookups (service callers, the crawl scheduler): by login server or by ID, across tenants, since
    /// the caller does not know the registry's tenant yet (it learns it from the record).
    func registry(loginServer: String) async throws -> RegistryRecord? {
        try await selectRegistries(.system, "WHERE login_server = $1", binds: [loginServer.lowercased()]).first
    }

    func registry(id: UUID) async throws -> RegistryRecord? {
        try await selectRegistries(.system, "WHERE id = $1", binds: [id]).first
    }

    /// Registries whose credentials are sealed under another key than `keyID`.
    func registriesSealed(notUnder keyID: String) async throws -> [RegistryRecord] {
        try await selectRegistries(.system, "WHERE credentials_sealed IS NOT NULL AND coalesce(key_id, 'default') <> $1 ORDER BY id",
                                   binds: [keyID])
    }

    /// Replaces a registry's sealed credentials when they are still the ones read (`previous`); false when another
    /// writer changed them first.
    func reseal(tenantID: UUID, registryID: UUID, previous: String, sealed: String, keyID: String) async throws -> Bool {
        let logger = self.logger
        return try await scoped(.tenant(tenantID)) { connection in
            let rows = try await connection.query("""
                UPDATE discovery.registries SET credentials_sealed = \(sealed), key_id = \(keyID)
                WHERE id = \(registryID) AND credentials_sealed = \(previous) RETURNING id
                """, logger: logger)
            for try await _ in rows { return true }
            return false
        }
    }

    private func selectRegistries(_ scope: Scope, _ whereClause: String,
                                  binds values: [any PostgresEncodable & Sendable]) async throws -> [RegistryRecord] {
        var bindings = PostgresBindings()
        for value in values { try bindings.append(value) }
        let query = PostgresQuery(unsafeSQL: """
            SELECT id, tenant_id, subscription_id, login_server, insecure, credentials_sealed, credential_kind, key_id,
                   network_access, last_crawl_at, onboarded_at, created_at
            FROM discovery.registries \(whereClause)
            """, binds: bindings)
        let logger = self.logger
        return try await scoped(scope) { connection in
            let rows = try await connection.query(query, logger: logger)
            var result: [RegistryRecord] = []
            for try await (id, tenant, subscription, login, insecure, sealed, kind, keyID, access, lastCrawl, onboarded, created)
                in rows.decode((UUID, UUID, UUID, String, Bool, String?, String?, String?, String, Date?, Date?, Date).self) {
                result.append(RegistryRecord(id: id, tenantID: tenant, subscriptionID: subscription, loginServer: login,
                                             insecure: insecure, credentialsSealed: sealed, credentialKind: kind, keyID: keyID,
                                             networkAccess: NetworkAccess(rawValue: access) ?? .public, lastCrawlAt: lastCrawl,
                                             onboardedAt: onboarded, createdAt: created))
            }
            return result
        }
    }

    /// Appends an audit row. `subject` is stored as given: IDs in lowercase, as the API writes them (rows written
    /// before that carry upper-case IDs; the audit-log route answers in lowercase either way).
    static func audit(_ connection: PostgresConnection, tenantID: UUID, actor: String, action: String, subject: String,
                      detail: String, logger: Logger) async throws {
        try await connection.query("""
            INSERT INTO discovery.audit_log (tenant_id, actor, action, subject, detail)
            VALUES (\(tenantID), \(actor), \(action), \(subject), \(detail))
            """, logger: logger)
    }
}
