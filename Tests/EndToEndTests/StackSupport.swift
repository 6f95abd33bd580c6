import AsyncHTTPClient
import Foundation
import GantryModel
import GantryRuntime
import GantryTesting
import Logging
import NIOHTTP1
import RegistryClient
import Testing

/// A tenant, its subscription (plan enabled) and one registry, registered through discovery's API as a user would.
struct Registration: Sendable {
    var tenantID: String
    var subscriptionID: String
    var registryID: String

    /// Registers tenant `name`, subscription `name` and registry `registryHost` (plain HTTP, with basic-auth
    /// `credentials` when given) with the discovery service of `env`.
    static func register(_ env: TestEnvironment, name: String, registryHost: String,
                         credentials: RegistryCredentials? = nil) async throws -> Registration {
        let discovery = env.url(.discovery).absoluteString
        let tenant = try await TestHTTP.json(.POST, "\(discovery)/v1/tenants", ["name": name])
        try #require(tenant.status == 201, "\(tenant.text)")
        let tenantID = try #require(try tenant.object()["id"] as? String)
        let subscription = try await TestHTTP.json(.POST, "\(discovery)/v1/tenants/\(tenantID)/subscriptions",
                                                   ["name": name, "cloudType": "commercial"])
        try #require(subscription.status == 201, "\(subscription.text)")
        let subscriptionID = try #require(try subscription.object()["id"] as? String)
        let plan = try await TestHTTP.json(.PUT, "\(discovery)/v1/tenants/\(tenantID)/subscriptions/\(subscriptionID)/plan",
                                           ["enabled": true])
        try #require(plan.status == 200, "\(plan.text)")
        var fields: [String: Any] = ["loginServer": registryHost, "insecure": true]
        if let credentials { fields["credentials"] = ["username": credentials.username, "password": credentials.password] }
        let registry = try await TestHTTP.json(.POST, "\(discovery)/v1/tenants/\(tenantID)/subscriptions/\(subscriptionID)/registries",
                                               fields)
        try #require(registry.status == 201, "\(registry.text)")
        let registryID = try #require(try registry.object()["id"] as? String)
        return Registration(tenantID: tenantID, subscriptionID: subscriptionID, registryID: registryID)
    }
}

/// Pushes a corpus image (`archive`, relative to the corpus) with skopeo and returns the digest the registry stored,
/// read back over the distribution API.
func pushCorpusImage(_ archive: String, to registry: TestRegistry, repository: String, tag: String,
                     credentials: RegistryCredentials? = nil) async throws -> String {
    try Skopeo.copy(ociArchive: try Corpus.file(archive), to: registry.host, repository: repository, tag: tag,
                    credentials: credentials.map { ($0.username, $0.password) })
    let client = RegistryClient(httpClient: .shared, logger: Logger(label: "e2e"))
    return try await client.manifest(RegistryEndpoint(baseURL: registry.baseURL, credentials: credentials),
                                     repository: repository, reference: tag).digest.description
}
