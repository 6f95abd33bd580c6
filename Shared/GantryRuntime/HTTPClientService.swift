import AsyncHTTPClient
import ServiceLifecycle

/// Owns an `HTTPClient` for the life of the service group and shuts it down on graceful shutdown.
public struct HTTPClientService: Service {
    public let client: HTTPClient

    public init(client: HTTPClient) { self.client = client }

    public func run() async throws {
        try? await gracefulShutdown()
        try await client.shutdown()
    }
}
