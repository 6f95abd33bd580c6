import DiscoveryAPI
import Foundation
import GantryRuntime
import RegistryClient

/// The registry facts ingestion needs from discovery.
struct RegisteredRegistry: Sendable {
    var registryID: UUID
    var tenantID: UUID
    var subscriptionID: UUID
    var loginServer: String
    var planEnabled: Bool
    /// `http(s)://loginServer`, where imports push to; nil when not needed (tests building a registration).
    var baseURL: URL? = nil
    /// Discovery's credentials for the registry (opened from its sealed store), for imports; nil when none.
    var credentials: RegistryCredentials? = nil
}

/// Discovery as seen from ingestion.
protocol DiscoveryPeer: Sendable {
    /// The registry registered for a login-server host, or nil when none is.
    func registry(host: String) async throws -> RegisteredRegistry?
    /// The registry with this ID, or nil when discovery does not know it (any more).
    func registry(id: UUID) async throws -> RegisteredRegistry?
}

/// Calls discovery's internal lookup over HTTP with a service token.
struct HTTPDiscoveryPeer: DiscoveryPeer {
    let client: DiscoveryAPI.Client

    init(runtime: ServiceRuntime) {
        let (url, transport, middlewares) = runtime.peerClientParts(.discovery)
        client = DiscoveryAPI.Client(serverURL: url, transport: transport, middlewares: middlewares)
    }

    func registry(host: String) async throws -> RegisteredRegistry? {
        switch try await client.lookupRegistry(query: .init(host: host)) {
        case .ok(let ok):
            return try Self.registry(try ok.body.json)
        case .notFound:
            return nil
        case .undocumented(let status, _):
            throw ProblemError.badGateway("discovery answered HTTP \(status) to a registry lookup")
        }
    }

    func registry(id: UUID) async throws -> RegisteredRegistry? {
        switch try await client.getRegistryAccess(path: .init(registryId: id.uuidString.lowercased())) {
        case .ok(let ok):
            return try Self.registry(try ok.body.json)
        case .notFound:
            return nil
        case .undocumented(let status, _):
            throw ProblemError.badGateway("discovery answered HTTP \(status) for registry \(id.uuidString.lowercased())")
        }
    }

    private static func registry(_ access: DiscoveryAPI.Components.Schemas.RegistryAccess) throws -> RegisteredRegistry {
        RegisteredRegistry(
            registryID: try Validate.uuid(access.registryId, field: "registryId"),
            tenantID: try Validate.uuid(access.tenantId, field: "tenantId"),
            subscriptionID: try Validate.uuid(access.subscriptionId, field: "subscriptionId"),
            // A not-applicable registry (private without trusted access) requests no scans, like a disabled plan.
            loginServer: access.loginServer, planEnabled: access.planEnabled && access.applicable != false, baseURL: URL(string: access.baseURL),
            credentials: access.credentials.map { RegistryCredentials(username: $0.username, password: $0.password) })
    }
}
