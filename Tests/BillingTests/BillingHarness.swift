import Billing
import Foundation
import GantryRuntime
import GantryTesting
import Logging
import NIOHTTP1
import PostgresNIO
import Testing

/// A billing service run in-process on a fresh real PostgreSQL database, and calls against it over HTTP.
struct BillingHarness: Sendable {
    let env: TestEnvironment
    let database: TestDatabase
    var base: String { env.url(.billing).absoluteString }

    /// Runs `body` against a billing service configured with `extra` variables. The free trial is off unless
    /// `GANTRY_BILLING_TRIAL_DAYS` says otherwise, so that prices show; trial tests set it.
    static func run(extra: [String: String] = ["GANTRY_BILLING_TRIAL_DAYS": "0"],
                    _ body: @Sendable (BillingHarness) async throws -> Void) async throws {
        let database = try await TestDatabase.create()
        do {
            let env = try TestEnvironment(database: database, extra: extra)
            let app = try await buildBillingApplication(configuration: env.configuration(.billing))
            let harness = BillingHarness(env: env, database: database)
            // Billing's public routes ask discovery whether the path's subscription is the tenant's.
            try await withRunningServices([try await env.discoveryApplication(), app],
                                          readyPorts: [env.discoveryPort, env.ports[.billing]!]) { try await body(harness) }
        } catch {
            await database.drop()
            throw error
        }
        await database.drop()
    }

    /// A tenant and subscription registered in the discovery beside billing, with a fresh registry ID.
    func account() async throws -> Account {
        let created = try await TestSubscription.create(in: env)
        return Account(tenant: created.tenantID, subscription: created.subscriptionID)
    }

    /// Another subscription of `account`'s tenant, registered in discovery.
    func account(sameTenantAs account: Account) async throws -> Account {
        let created = try await TestSubscription.create(in: env, tenantID: account.tenant)
        return Account(tenant: created.tenantID, subscription: created.subscriptionID)
    }

    /// `POST /internal/v1/usage` with a service token for billing (or `token`).
    func record(_ usage: UsageMessage, token: String? = nil) async throws -> TestHTTP.Reply {
        let bearer: String
        if let token { bearer = token } else { bearer = try await env.tokens(issuer: "scanner").token(for: "billing") }
        return try await TestHTTP.json(.POST, "\(base)/internal/v1/usage", usage.json,
                                       headers: ["Content-Type": "application/json", "Authorization": "Bearer \(bearer)"])
    }

    /// Records a scan and returns its receipt, requiring 200.
    func receipt(_ usage: UsageMessage) async throws -> Receipt {
        let reply = try await record(usage)
        try #require(reply.status == 200, "\(reply.text)")
        return try Receipt(reply.object())
    }

    /// Records a scan and returns the receipt's `charged`, requiring 200.
    func charged(_ usage: UsageMessage) async throws -> Bool { try await receipt(usage).charged }

    /// `GET` a billing path (with its query) and the JSON object answered, requiring 200.
    func get(_ path: String) async throws -> [String: Any] {
        let reply = try await TestHTTP.send(.GET, "\(base)\(path)")
        try #require(reply.status == 200, "\(path): \(reply.text)")
        return try reply.object()
    }

    func usage(tenant: String, subscription: String, query: String = "") async throws -> [String: Any] {
        try await get("/v1/tenants/\(tenant)/subscriptions/\(subscription)/usage\(query)")
    }

    /// One integer from a SQL query on the service's database, seeing every tenant's rows (system access).
    func count(_ query: PostgresQuery) async throws -> Int {
        try await database.withClient { client in
            try await client.withSystemAccess(logger: Logger(label: "test-db")) { connection in
                for try await count in try await connection.query(query, logger: Logger(label: "test-db")).decode(Int.self) {
                    return count
                }
                return -1
            }
        }
    }

    func chargeCount(digest: String? = nil) async throws -> Int {
        if let digest { return try await count("SELECT count(*)::int FROM billing.charges WHERE digest = \(digest)") }
        return try await count("SELECT count(*)::int FROM billing.charges")
    }
}

/// A usage receipt as answered.
struct Receipt: Sendable, Equatable {
    var charged: Bool
    var chargeID: String?
    var disposition: String
    var unitPrice: String?
    var listPrice: String?
    var currency: String?
    var redelivered: Bool

    init(_ object: [String: Any]) throws {
        charged = try #require(object["charged"] as? Bool)
        chargeID = object["chargeId"] as? String
        disposition = try #require(object["disposition"] as? String)
        unitPrice = object["unitPrice"] as? String
        listPrice = object["listPrice"] as? String
        currency = object["currency"] as? String
        redelivered = try #require(object["redelivered"] as? Bool)
    }
}

/// A `ScanUsage` message as the scanner's outbox sends it; `overrides` replace (or, with nil, remove) fields
/// to make bad input.
struct UsageMessage: Sendable {
    var messageId = UUID().uuidString
    var tenantId: String
    var subscriptionId: String
    var registryId: String
    var digest: String
    var scanId = UUID().uuidString.lowercased()
    var trigger = "push"
    var registryHost: String?
    var scannedAt: Date?
    var outcome: String?
    var planEnabled: Bool?
    var overrides: [String: String?] = [:]

    var json: [String: Any] {
        var object: [String: Any] = [
            "messageId": messageId, "tenantId": tenantId, "subscriptionId": subscriptionId, "registryId": registryId,
            "digest": digest, "scanId": scanId, "trigger": trigger,
        ]
        if let registryHost { object["registryHost"] = registryHost }
        if let scannedAt { object["scannedAt"] = ISO8601DateFormatter().string(from: scannedAt) }
        if let outcome { object["outcome"] = outcome }
        if let planEnabled { object["planEnabled"] = planEnabled }
        for (field, value) in overrides { object[field] = value }
        return object
    }
}

/// One tenant and subscription with a registry.
struct Account: Sendable {
    var tenant = UUID().uuidString.lowercased()
    var subscription = UUID().uuidString.lowercased()
    var registry = UUID().uuidString.lowercased()

    func scan(_ digest: String, trigger: String = "push", messageID: String = UUID().uuidString,
              scanID: String = UUID().uuidString.lowercased(), registry: String? = nil, host: String? = nil,
              at scannedAt: Date? = nil) -> UsageMessage {
        UsageMessage(messageId: messageID, tenantId: tenant, subscriptionId: subscription,
                     registryId: registry ?? self.registry, digest: digest, scanId: scanID, trigger: trigger,
                     registryHost: host, scannedAt: scannedAt)
    }
}

/// `sha256:` and 64 hex digits made of `seed` repeated.
func digest(_ seed: String) -> String {
    "sha256:" + String(repeating: seed, count: 64 / seed.count)
}

/// The digest of image number `index` (distinct for distinct indexes).
func digest(number index: Int) -> String {
    "sha256:" + String(format: "%064x", index)
}

/// A UTC instant, for dates written in tests.
func utc(_ text: String) -> Date {
    ISO8601DateFormatter().date(from: text)!
}
