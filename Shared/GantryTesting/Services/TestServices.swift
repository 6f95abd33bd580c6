import AsyncHTTPClient
import Foundation
import GantryRuntime
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle

/// Configuration for services under test: development profile, fresh random keys, the given database,
/// and peers on the given ports of 127.0.0.1.
package struct TestEnvironment: Sendable {
    package let database: TestDatabase
    package let ports: [GantryServiceName: Int]
    package let serviceKey: String
    package let secretKey: String
    package var extra: [String: String]

    /// Picks a free port for every service.
    package init(database: TestDatabase, extra: [String: String] = [:]) throws {
        self.database = database
        var ports: [GantryServiceName: Int] = [:]
        for service in GantryServiceName.allCases { ports[service] = try FreePort.next() }
        self.ports = ports
        serviceKey = (0..<48).map { _ in String(UInt8.random(in: 0...255), radix: 16) }.joined()
        secretKey = Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        self.extra = extra
    }

    package var environment: [String: String] {
        var environment: [String: String] = [
            "GANTRY_DATABASE_URL": database.url,
            "GANTRY_CLOUD": "commercial",
            "GANTRY_PROFILE": "development",
            "GANTRY_SERVICE_KEY": serviceKey,
            "GANTRY_SECRET_KEY": secretKey,
            "GANTRY_LOG_LEVEL": ProcessInfo.processInfo.environment["GANTRY_TEST_LOG_LEVEL"] ?? "warning",
            "GANTRY_DEV_TOKEN_KEY_FILE": TestUserTokens.keyFile,
            "GANTRY_OIDC_ISSUER": TestUserTokens.issuer,
            "GANTRY_OIDC_JWKS": TestUserTokens.jwksDocument,
        ]
        for (service, port) in ports { environment[service.urlVariable] = "http://127.0.0.1:\(port)" }
        environment.merge(extra) { $1 }
        // Services refuse the development key in production; the pinned OIDC key serves there.
        if environment["GANTRY_PROFILE"] == "production" { environment["GANTRY_DEV_TOKEN_KEY_FILE"] = nil }
        return environment
    }

    /// The configuration of one service.
    package func configuration(_ service: GantryServiceName) throws -> GantryConfiguration {
        var environment = self.environment
        environment["GANTRY_PORT"] = String(ports[service] ?? 0)
        return try GantryConfiguration(service: service, environment: environment)
    }

    package func url(_ service: GantryServiceName) -> URL {
        URL(string: "http://127.0.0.1:\(ports[service] ?? 0)")!
    }

    /// Service tokens signed with this environment's key, as a peer (or the CLI) would send.
    package func tokens(issuer: String = "test") async -> ServiceTokens {
        await ServiceTokens(key: serviceKey, issuer: issuer)
    }
}

/// Runs services in-process for the length of `body`, after every listed port answers `/readyz`;
/// then shuts them down gracefully.
package func withRunningServices<T: Sendable>(
    _ services: [any Service], readyPorts: [Int], timeout: Duration = .seconds(60),
    _ body: @Sendable () async throws -> T
) async throws -> T {
    var logger = Logger(label: "test-services")
    logger.logLevel = .warning
    var configuration = ServiceGroupConfiguration(services: services.map { .init(service: $0) },
                                                  gracefulShutdownSignals: [], logger: logger)
    // A service that does not stop (a worker stuck on a dead connection) fails the test instead of hanging the run.
    configuration.maximumGracefulShutdownDuration = .seconds(60)
    configuration.maximumCancellationDuration = .seconds(15)
    let group = ServiceGroup(configuration: configuration)
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        do {
            try await waitUntilReady(ports: readyPorts, timeout: timeout)
            let result = try await body()
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return result
        } catch {
            await group.triggerGracefulShutdown()
            try? await tasks.waitForAll()
            throw error
        }
    }
}

/// Polls `GET /readyz` on each port until it answers 200.
/// - Throws: `TestServiceError` naming the ports that never became ready.
package func waitUntilReady(ports: [Int], timeout: Duration = .seconds(60)) async throws {
    let deadline = ContinuousClock.now + timeout
    var pending = Set(ports)
    while !pending.isEmpty {
        for port in pending {
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/readyz")
            request.method = .GET
            if let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(2)),
               response.status == .ok {
                pending.remove(port)
            }
        }
        guard !pending.isEmpty else { return }
        guard ContinuousClock.now < deadline else {
            throw TestServiceError("services on ports \(pending.sorted()) were not ready within \(timeout)")
        }
        try await Task.sleep(for: .milliseconds(100))
    }
}

/// Waits until `condition` returns a value, polling every 100 ms.
/// - Throws: `TestServiceError` with `what` after `timeout`.
package func eventually<T>(_ what: String, timeout: Duration = .seconds(30),
                                     _ condition: @Sendable () async throws -> T?) async throws -> T {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if let value = try await condition() { return value }
        try await Task.sleep(for: .milliseconds(100))
    }
    throw TestServiceError("timed out after \(timeout) waiting for \(what)")
}

package struct TestServiceError: Error, CustomStringConvertible {
    package let description: String
    package init(_ description: String) { self.description = description }
}

/// A minimal JSON-over-HTTP caller for tests: status, headers and body of one request.
package struct TestHTTP: Sendable {
    package struct Reply: Sendable {
        package var status: Int
        package var headers: [(String, String)]
        package var body: Data
        package func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }
        package func json() throws -> Any { try JSONSerialization.jsonObject(with: body) }
        package var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// - Parameter authorize: when the caller sets no `Authorization` on a route that needs a user token,
    ///   attach `TestUserTokens.defaultToken(for:)`; false sends the request without one.
    package static func send(_ method: HTTPMethod, _ url: String, body: Data? = nil,
                             headers: [String: String] = ["Content-Type": "application/json"],
                             authorize: Bool = true) async throws -> Reply {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if authorize, !headers.keys.contains(where: { $0.lowercased() == "authorization" }),
           let path = URLComponents(string: url)?.percentEncodedPath, !AccessPolicy.isExempt(path: path) {
            request.headers.add(name: "Authorization", value: "Bearer \(try await TestUserTokens.defaultToken(for: path))")
        }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let buffer = try await response.body.collect(upTo: 64 << 20)
        return Reply(status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) },
                     body: Data(buffer.readableBytesView))
    }

    package static func json(_ method: HTTPMethod, _ url: String, _ object: Any,
                             headers: [String: String] = ["Content-Type": "application/json"],
                             authorize: Bool = true) async throws -> Reply {
        try await send(method, url, body: try JSONSerialization.data(withJSONObject: object), headers: headers,
                       authorize: authorize)
    }
}
