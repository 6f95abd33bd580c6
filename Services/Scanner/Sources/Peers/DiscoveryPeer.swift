import DiscoveryAPI
import Foundation
import GantryRuntime
import RegistryClient

/// How the scanner reaches one registry, from discovery.
struct RegistryAccess: Sendable {
    var registryID: UUID
    var loginServer: String
    var endpoint: RegistryEndpoint
    var planEnabled: Bool
}

/// Discovery as seen from the scanner.
protocol DiscoveryPeer: Sendable {
    /// The registry's address, credentials and plan state; nil when discovery no longer knows it.
    func registryAccess(_ registryID: UUID) async throws -> RegistryAccess?
}

/// Calls discovery's internal registry endpoint over HTTP with a service token.
struct HTTPDiscoveryPeer: DiscoveryPeer {
    let client: DiscoveryAPI.Client

    init(runtime: ServiceRuntime) {
        let (url, transport, middlewares) = runtime.peerClientParts(.discovery)
        client = DiscoveryAPI.Client(serverURL: url, transport: transport, middlewares: middlewares)
    }

    func registryAccess(_ registryID: UUID) async throws -> RegistryAccess? {
        switch try await client.getRegistryAccess(path: .init(registryId: registryID.uuidString.lowercased())) {
        case .ok(let ok):
            let access = try ok.body.json
            guard let baseURL = URL(string: access.baseURL) else {
                throw ProblemError.badGateway("discovery returned a malformed registry URL")
            }
            return RegistryAccess(
                registryID: registryID, loginServer: access.loginServer,
                endpoint: RegistryEndpoint(baseURL: baseURL, credentials: access.credentials.map {
                    RegistryCredentials(username: $0.username, password: $0.password)
                }),
                // A not-applicable registry (private without trusted access) is never scanned, like a disabled plan.
                planEnabled: access.planEnabled && access.applicable != false)
        case .notFound:
            return nil
        case .undocumented(let status, _):
            throw ProblemError.badGateway("discovery answered HTTP \(status) for registry \(registryID.uuidString.lowercased())")
        }
    }
}
