import Foundation
import GantryRuntime
import GantryTesting
import NIOHTTP1
import Testing

/// The real executables, as `make run` starts them: operations endpoints, JSON logs, a clear one-line
/// error for bad configuration, and graceful shutdown on SIGTERM.
@Suite(.serialized)
struct ServiceProcessTests {
    static let binDirectory = Corpus.repositoryRoot.appendingPathComponent(".build/debug")

    static func launch(_ executable: String, environment: [String: String], output: URL) throws -> Process {
        let process = Process()
        process.executableURL = binDirectory.appendingPathComponent(executable)
        process.environment = environment.merging(["PATH": "/usr/bin:/bin"]) { $1 }
        FileManager.default.createFile(atPath: output.path, contents: nil)
        let handle = try FileHandle(forWritingTo: output)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        return process
    }

    @Test("gantry-billing serves /healthz, /readyz, /metrics and /openapi.yaml, logs JSON, and stops cleanly on SIGTERM")
    func operationsAndGracefulShutdown() async throws {
        let database = try await TestDatabase.create()
        defer { Task { await database.drop() } }
        let env = try TestEnvironment(database: database)
        var environment = env.environment
        let port = env.ports[.billing]!
        environment["GANTRY_PORT"] = String(port)
        environment["GANTRY_LOG_LEVEL"] = "info"
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-billing-\(UUID()).log")
        let process = try Self.launch("gantry-billing", environment: environment, output: log)
        defer { if process.isRunning { process.terminate() } }
        try await waitUntilReady(ports: [port], timeout: .seconds(60))
        let base = "http://127.0.0.1:\(port)"

        let health = try await TestHTTP.send(.GET, "\(base)/healthz")
        #expect(health.status == 200)
        let request = try await TestHTTP.send(.GET, "\(base)/healthz", headers: ["X-Request-ID": "e2e-request-42"])
        #expect(request.header("X-Request-ID") == "e2e-request-42")
        let spec = try await TestHTTP.send(.GET, "\(base)/openapi.yaml")
        let expected = try String(contentsOf: Corpus.repositoryRoot.appendingPathComponent("Shared/Contracts/specs/billing.yaml"),
                                  encoding: .utf8)
        #expect(spec.status == 200)
        #expect(spec.text == expected)
        let metrics = try await TestHTTP.send(.GET, "\(base)/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.text.contains("hb_requests"), "\(metrics.text.prefix(500))")
        let unauthorized = try await TestHTTP.json(.POST, "\(base)/internal/v1/usage", ["messageId": "x"])
        #expect(unauthorized.status == 401)
        #expect(unauthorized.header("Content-Type") == "application/problem+json")

        process.terminate()  // SIGTERM
        let deadline = ContinuousClock.now + .seconds(15)
        while process.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        #expect(!process.isRunning, "gantry-billing did not stop within 15 s of SIGTERM")
        #expect(process.terminationReason == .exit && process.terminationStatus == 0)
        let lines = try String(contentsOf: log, encoding: .utf8).split(separator: "\n")
        #expect(!lines.isEmpty)
        for line in lines {
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["level"] != nil && object?["message"] != nil, "not a JSON log line: \(line)")
        }
    }

    @Test("a bad configuration value stops the service with one line naming the variable")
    func badConfiguration() async throws {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-bad-\(UUID()).log")
        let process = try Self.launch("gantry-scanner", environment: [
            "GANTRY_SERVICE_KEY": String(repeating: "k", count: 40), "GANTRY_CLOUD": "mars",
        ], output: log)
        process.waitUntilExit()
        #expect(process.terminationStatus == 1)
        let output = try String(contentsOf: log, encoding: .utf8)
        #expect(output == "gantry-scanner: configuration error: GANTRY_CLOUD: 'mars' is not one of commercial, government, china\n")
    }
}
