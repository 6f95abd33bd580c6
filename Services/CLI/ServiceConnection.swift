import AsyncHTTPClient
import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1
import GantryRuntime
import OpenAPIAsyncHTTPClient
import OpenAPIRuntime

/// How the CLI reaches the services: their URLs from `GANTRY_<SERVICE>_URL` and, for internal
/// routes, service tokens signed with `GANTRY_SERVICE_KEY` (issuer `gantry-cli`).
struct ServiceConnection: Sendable {
    let urls: [GantryServiceName: URL]
    let tokens: ServiceTokens

    /// - Throws: `ConfigurationError` when `GANTRY_SERVICE_KEY` or a URL is missing or malformed.
    static func fromEnvironment() async throws -> ServiceConnection {
        let configuration = try GantryConfiguration(service: .scanner)
        return ServiceConnection(urls: configuration.peerURLs,
                                 tokens: await ServiceTokens(key: configuration.serviceKey, issuer: "gantry-cli"))
    }

    func url(_ service: GantryServiceName) -> URL {
        urls[service] ?? URL(string: "http://127.0.0.1:\(service.defaultPort)")!
    }

    /// Transport and the token middleware for a generated client of `service`.
    func clientParts(_ service: GantryServiceName) -> (URL, any ClientTransport, [any ClientMiddleware]) {
        (url(service), AsyncHTTPClientTransport(configuration: .init(client: .shared, timeout: .seconds(60))),
         [PeerCallMiddleware(tokens: tokens, audience: service.rawValue)])
    }

    /// Waits until every service answers `/readyz` with 200.
    /// - Throws: `CLIError` naming the services that are not ready after `timeout`.
    func waitUntilReady(timeout: Duration = .seconds(120)) async throws {
        let deadline = ContinuousClock.now + timeout
        var pending = Set(GantryServiceName.allCases)
        while !pending.isEmpty {
            for service in pending {
                var request = HTTPClientRequest(url: url(service).appendingPathComponent("readyz").absoluteString)
                request.method = .GET
                if let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(2)),
                   response.status.code == 200 {
                    pending.remove(service)
                }
            }
            if pending.isEmpty { break }
            guard ContinuousClock.now < deadline else {
                throw CLIError("not ready after \(timeout): \(pending.map(\.rawValue).sorted().joined(separator: ", "))")
            }
            try await Task.sleep(for: .milliseconds(250))
        }
    }
}

/// A CLI failure with a message for the operator.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
