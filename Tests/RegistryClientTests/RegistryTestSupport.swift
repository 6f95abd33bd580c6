import AsyncHTTPClient
import Foundation
import GantryTesting
import Logging
import NIOCore
import RegistryClient

/// Shared set-up for tests against a live `docker-registry`.
enum RegistryTestSupport {
    /// Live tests run when the corpus and the tools are present, and always under CI (where a missing
    /// tool must fail loudly rather than skip).
    static var liveTestsEnabled: Bool {
        let tools = [TestRegistry.executable, Skopeo.executable].allSatisfy(FileManager.default.isExecutableFile(atPath:))
        return ProcessInfo.processInfo.environment["CI"] == "true" || (Corpus.isAvailable && tools)
    }

    static let logger: Logger = {
        var logger = Logger(label: "gantry.registry-client.tests")
        logger.logLevel = .info
        return logger
    }()

    /// Runs `body` with a client whose HTTPClient does not follow redirects itself (as documented).
    static func withClient<T>(limits: RegistryLimits = .init(), connectTimeoutSeconds: Int64 = 10,
                              _ body: (RegistryClient) async throws -> T) async throws -> T {
        let httpClient = HTTPClient(eventLoopGroupProvider: .singleton,
                                    configuration: .init(redirectConfiguration: .disallow,
                                                         timeout: .init(connect: .seconds(connectTimeoutSeconds))))
        let client = RegistryClient(httpClient: httpClient, limits: limits, logger: logger)
        do {
            let result = try await body(client)
            try await httpClient.shutdown()
            return result
        } catch {
            try? await httpClient.shutdown()
            throw error
        }
    }

    /// Starts a registry, pushes corpus image `image` (`images/<image>.oci.tar`) as `repository:tag`.
    static func registry(pushing images: [(image: String, repository: String, tag: String, all: Bool)] = [],
                         basicAuth: (user: String, password: String)? = nil) async throws -> TestRegistry {
        let registry = try await TestRegistry.start(basicAuth: basicAuth)
        do {
            for image in images {
                try Skopeo.copy(ociArchive: try Corpus.file("images/\(image.image).oci.tar"), to: registry.host,
                                repository: image.repository, tag: image.tag, all: image.all,
                                credentials: basicAuth.map { ($0.user, $0.password) })
            }
        } catch {
            registry.stop()
            throw error
        }
        return registry
    }

    static func endpoint(_ registry: TestRegistry, credentials: RegistryCredentials? = nil) -> RegistryEndpoint {
        RegistryEndpoint(baseURL: registry.baseURL, credentials: credentials)
    }
}
