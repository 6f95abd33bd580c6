import AsyncHTTPClient
import RegistryClient
import ServiceLifecycle

extension AddressGuard {
    /// The variable that lets a deployment reach registries, import sources and webhook receivers on private
    /// networks (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7).
    public static let allowPrivateVariable = "GANTRY_ALLOW_PRIVATE_REGISTRIES"

    /// The variable that lets notification deliver to webhook receivers on private networks. Separate from
    /// `allowPrivateVariable`: allowing private registries must not let any Contributor aim webhooks at internal
    /// services.
    public static let allowPrivateWebhooksVariable = "GANTRY_ALLOW_PRIVATE_WEBHOOKS"

    /// The one SSRF guard of a deployment (issue 6, "SSRF guard"), for every outbound call to a tenant-supplied
    /// URL: registries (discovery, scanner), import sources and targets (ingestion), webhook receivers
    /// (notification). Loopback only in the development profile; private networks only when
    /// `privateVariable` (`GANTRY_ALLOW_PRIVATE_REGISTRIES`; notification passes `GANTRY_ALLOW_PRIVATE_WEBHOOKS`) is
    /// `true`/`1` (`false`/`0`/unset: refused); link-local (cloud metadata), unspecified, multicast and reserved
    /// addresses always refused.
    /// - Throws: `ConfigurationError` naming `privateVariable` when it is set to anything else.
    public static func forDeployment(_ configuration: GantryConfiguration,
                                     privateVariable: String = allowPrivateVariable) throws -> AddressGuard {
        let allowPrivate: Bool
        switch configuration.environment[privateVariable]?.lowercased() {
        case nil, "", "false", "0": allowPrivate = false
        case "true", "1": allowPrivate = true
        case let other?:
            throw ConfigurationError(variable: privateVariable, message: "'\(other.prefix(50))' is not true or false")
        }
        var guarded = AddressGuard(allowLoopback: configuration.profile == .development, allowPrivate: allowPrivate)
        guarded.privateSetting = privateVariable
        return guarded
    }
}

/// Shuts a `PinnedHTTPClients` pool down when the service shuts down (as `HTTPClientService` does for one client).
public struct PinnedHTTPClientsService: Service {
    public let clients: PinnedHTTPClients

    public init(clients: PinnedHTTPClients) { self.clients = clients }

    public func run() async throws {
        try? await gracefulShutdown()
        try await clients.shutdown()
    }
}
