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
    var createdAt: Date
}

/// A registry row; `credentialsSealed` is the AES-GCM box, never the clear text.
struct RegistryRecord: Sendable {
    var id: UUID
    var tenantID: UUID
    var subscriptionID: UUID
    var loginServer: String
    var insecure: Bool
    var credentialsSealed: String?
    var createdAt: Date
}

/// Discovery's persistence in schema `discovery`. Every method takes the tenant it works for.
struct PostgresDiscoveryStore: Sendable {
    let database: PostgresClient
    let logger: Logger

    func createTenant(id: UUID, name: String) async throws -> Date {
        let rows = try await database.query(
            "INSERT INTO discovery.tenants (id, name) VALUES (\(id), \(name)) RETURNING created_at", logger: logger)
        for try await createdAt in rows.decode(Date.self) { return createdAt }
        throw ProblemError.internal("tenant was not created")
    }

    func tenantExists(_ tenantID: UUID) async throws -> Bool {
        let rows = try await database.query("SELECT 1 FROM discovery.tenants WHERE id = \(tenantID)", logger: logger)
        for try await _ in rows { return true }
        return false
    }

    func createSubscription(tenantID: UUID, id: UUID, name: String, cloudType: CloudType) async throws -> SubscriptionRecord {
        let logger = self.logger
        return try await database.withTransaction(logger: logger) { connection in
            try await connection.query("""
                INSERT INTO discovery.subscriptions (id, tenant_id, name, cloud_type)
                VALUES (\(id), \(tenantID), \(name), \(cloudType.rawValue))
                """, logger: logger)
            try await Self.audit(connection, tenantID: tenantID, action: "subscription.create", subject: id.uuidString,
                                 detail: "cloud=\(cloudType.rawValue)", logger: logger)
            guard let record = try await Self.subscription(connection, tenantID: tenantID, id: id, logger: logger) else {
                throw ProblemError.internal("subscription was not created")
            }
            return record
        }
    }

    func subscription(tenantID: UUID, id: UUID) async throws -> SubscriptionRecord? {
        try await database.withConnection { connection in
            try await Self.subscription(connection, tenantID: tenantID, id: id, logger: logger)
        }
    }

    static func subscription(_ connection: PostgresConnection, tenantID: UUID, id: UUID,
                             logger: Logger) async throws -> SubscriptionRecord? {
        let rows = try await connection.query("""
            SELECT id, tenant_id, name, cloud_type, plan_enabled, plan_changed_at, created_at
            FROM discovery.subscriptions WHERE tenant_id = \(tenantID) AND id = \(id)
            """, logger: logger)
        for try await (id, tenant, name, cloud, enabled, changed, created) in rows.decode(
            (UUID, UUID, String, String, Bool, Date?, Date).self) {
            return SubscriptionRecord(id: id, tenantID: tenant, name: name, cloudType: CloudType(rawValue: cloud) ?? .commercial,
                                      planEnabled: enabled, planChangedAt: changed, createdAt: created)
        }
        return nil
    }

    /// Sets the plan state; returns nil when the subscription does not exist for the tenant.
    func setPlan(tenantID: UUID, subscriptionID: UUID, enabled: Bool) async throws -> SubscriptionRecord? {
        let logger = self.logger
        return try await database.withTransaction(logger: logger) { connection in
            let rows = try await connection.query("""
                UPDATE discovery.subscriptions
                SET plan_changed_at = CASE WHEN plan_enabled <> \(enabled) THEN now() ELSE plan_changed_at END,
                    plan_enabled = \(enabled)
                WHERE tenant_id = \(tenantID) AND id = \(subscriptionID) RETURNING id
                """, logger: logger)
            var found = false
            for try await _ in rows { found = true }
            guard found else { return nil }
            try await Self.audit(connection, tenantID: tenantID, action: enabled ? "plan.enable" : "plan.disable",
                                 subject: subscriptionID.uuidString, detail: "", logger: logger)
            return try await Self.subscription(connection, tenantID: tenantID, id: subscriptionID, logger: logger)
        }
    }

    /// Inserts a registry; returns nil when the login server is already registered.
    func createRegistry(_ record: RegistryRecord) async throws -> RegistryRecord? {
        let logger = self.logger
        return try await database.withTransaction(logger: logger) { connection in
            let rows = try await connection.query("""
                INSERT INTO discovery.registries (id, tenant_id, subscription_id, login_server, insecure, credentials_sealed)
                VALUES (\(record.id), \(record.tenantID), \(record.subscriptionID), \(record.loginServer),
                        \(record.insecure), \(record.credentialsSealed))
                ON CONFLICT (login_server) DO NOTHING RETURNING created_at
                """, logger: logger)
            var created: Date?
            for try await date in rows.decode(Date.self) { created = date }
            guard let created else { return nil }
            try await Self.audit(connection, tenantID: record.tenantID, action: "registry.register",
                                 subject: record.id.uuidString, detail: record.loginServer, logger: logger)
            var result = record
            result.createdAt = created
            return result
        }
    }

    func registries(tenantID: UUID, subscriptionID: UUID) async throws -> [RegistryRecord] {
        try await selectRegistries("WHERE tenant_id = $1 AND subscription_id = $2 ORDER BY created_at",
                                   binds: [tenantID, subscriptionID])
    }

    /// Internal lookups (service callers): by login server or by ID, across tenants.
    func registry(loginServer: String) async throws -> RegistryRecord? {
        try await selectRegistries("WHERE login_server = $1", binds: [loginServer.lowercased()]).first
    }

    func registry(id: UUID) async throws -> RegistryRecord? {
        try await selectRegistries("WHERE id = $1", binds: [id]).first
    }

    private func selectRegistries(_ whereClause: String, binds values: [any PostgresEncodable & Sendable]) async throws -> [RegistryRecord] {
        var bindings = PostgresBindings()
        for value in values { try bindings.append(value) }
        let query = PostgresQuery(unsafeSQL: """
            SELECT id, tenant_id, subscription_id, login_server, insecure, credentials_sealed, created_at
            FROM discovery.registries \(whereClause)
            """, binds: bindings)
        let rows = try await database.query(query, logger: logger)
        var result: [RegistryRecord] = []
        for try await (id, tenant, subscription, login, insecure, sealed, created) in rows.decode(
            (UUID, UUID, UUID, String, Bool, String?, Date).self) {
            result.append(RegistryRecord(id: id, tenantID: tenant, subscriptionID: subscription, loginServer: login,
                                         insecure: insecure, credentialsSealed: sealed, createdAt: created))
        }
        return result
    }

    static func audit(_ connection: PostgresConnection, tenantID: UUID, action: String, subject: String,
                      detail: String, logger: Logger) async throws {
        try await connection.query("""
            INSERT INTO discovery.audit_log (tenant_id, action, subject, detail)
            VALUES (\(tenantID), \(action), \(subject), \(detail))
            """, logger: logger)
    }
}
