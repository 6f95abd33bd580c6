import Foundation
import Testing

/// The compose deployment (`compose/`): each cloud override renders, through the real
/// `docker-compose config`, to the full stack with that cloud selected, and a broken file is
/// rejected. No Docker engine is needed: `config` only validates and interpolates.
@Suite(
    "docker-compose files",
    .enabled(if: ComposeRunner.isAvailable, "docker-compose is not installed (scripts/deps.sh installs it)")
)
struct ComposeTests {
    static let clouds = ["commercial", "government", "china"]
    static let gantryServices = ["discovery", "ingestion", "scanner", "findings-policy", "billing", "notification"]

    @Test("each cloud override renders all services with its GANTRY_CLOUD", arguments: clouds)
    func cloudOverrideRenders(cloud: String) throws {
        let result = try ComposeRunner.config(
            files: [ComposeRunner.composeDirectory.appendingPathComponent("docker-compose.yml"),
                    ComposeRunner.composeDirectory.appendingPathComponent("docker-compose.\(cloud).yml")])
        #expect(result.status == 0, "docker-compose config failed for \(cloud): \(result.stderr)")

        let services = RenderedCompose.serviceNames(result.stdout)
        #expect(services == Set(Self.gantryServices + ["postgres", "registry"]),
                "services rendered for \(cloud): \(services.sorted())")

        // Every Gantry service, and only those, carries GANTRY_CLOUD, and it is this cloud.
        let cloudValues = RenderedCompose.values(of: "GANTRY_CLOUD", in: result.stdout)
        #expect(cloudValues.count == Self.gantryServices.count)
        #expect(cloudValues.allSatisfy { $0 == cloud }, "GANTRY_CLOUD values: \(cloudValues)")

        // Sovereign clouds never download feeds (bundle-only); commercial downloads every 6 hours.
        let update = RenderedCompose.values(of: "GANTRY_FEEDS_UPDATE_SECONDS", in: result.stdout)
        #expect(update.count == Self.gantryServices.count)
        #expect(update.allSatisfy { $0 == (cloud == "commercial" ? "21600" : "0") }, "GANTRY_FEEDS_UPDATE_SECONDS values: \(update)")

        // User sign-in is configured the same way for every service (OIDC issuer, JWKS URL, audience).
        let audiences = RenderedCompose.values(of: "GANTRY_OIDC_AUDIENCE", in: result.stdout)
        #expect(audiences.count == Self.gantryServices.count && audiences.allSatisfy { $0 == "gantry" }, "\(audiences)")
        #expect(RenderedCompose.values(of: "GANTRY_OIDC_ISSUER", in: result.stdout).count == Self.gantryServices.count)
        #expect(RenderedCompose.values(of: "GANTRY_OIDC_JWKS_URL", in: result.stdout).count == Self.gantryServices.count)

        // The services' database role is not the image's superuser (superusers bypass row-level security):
        // the init script creates it as a plain owner.
        #expect(RenderedCompose.values(of: "POSTGRES_USER", in: result.stdout) == ["postgres"])
        #expect(result.stdout.contains("/docker-entrypoint-initdb.d"))
        let initScript = try String(contentsOf: ComposeRunner.composeDirectory.appendingPathComponent("postgres-init/10-gantry-role.sh"),
                                    encoding: .utf8)
        #expect(initScript.contains("CREATE ROLE gantry LOGIN NOSUPERUSER NOBYPASSRLS"))
        #expect(initScript.contains("CREATE DATABASE gantry OWNER gantry"))

        // Peers are reached by service hostname, never loopback.
        #expect(result.stdout.contains("GANTRY_INGESTION_URL: http://ingestion:8082"))
        #expect(!RenderedCompose.values(of: "GANTRY_DATABASE_URL", in: result.stdout).contains { $0.contains("127.0.0.1") })
    }

    @Test("the secrets are required, not defaulted")
    func secretsAreRequired() throws {
        var environment = ComposeRunner.testEnvironment()
        environment.removeValue(forKey: "GANTRY_SERVICE_KEY")
        let result = try ComposeRunner.config(
            files: [ComposeRunner.composeDirectory.appendingPathComponent("docker-compose.yml"),
                    ComposeRunner.composeDirectory.appendingPathComponent("docker-compose.commercial.yml")],
            environment: environment)
        #expect(result.status != 0)
        #expect(result.stderr.contains("GANTRY_SERVICE_KEY"), "stderr: \(result.stderr)")
    }

    /// A copy of the real file renders in a temporary directory; the same copy with one
    /// mistake does not. The control run shows it is the mistake that is rejected.
    @Test("an invalid compose file is rejected", arguments: [
        Breakage(name: "unknown service option", replace: "\n  postgres:\n", with: "\n  postgres:\n    bogus_option: true\n"),
        Breakage(name: "YAML syntax error", replace: "\n  registry:\n", with: "\n  registry: [unclosed\n"),
        Breakage(name: "dependency on an undefined service", replace: "      discovery: { condition: service_healthy }\n",
                 with: "      discovry: { condition: service_healthy }\n"),
    ])
    func invalidFileIsRejected(breakage: Breakage) throws {
        let original = try String(contentsOf: ComposeRunner.composeDirectory.appendingPathComponent("docker-compose.yml"),
                                  encoding: .utf8)
        #expect(original.contains(breakage.replace), "the mutation no longer applies: update the test")
        let broken = original.replacingOccurrences(of: breakage.replace, with: breakage.with)

        let temporary = FileManager.default.temporaryDirectory
            .appendingPathComponent("gantry-compose-\(UUID().uuidString)", isDirectory: true)
        let directory = temporary.appendingPathComponent("compose", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: temporary) }

        let goodFile = directory.appendingPathComponent("docker-compose.yml")
        try original.write(to: goodFile, atomically: true, encoding: .utf8)
        let control = try ComposeRunner.config(files: [goodFile])
        #expect(control.status == 0, "the unmodified copy should render: \(control.stderr)")

        let brokenFile = directory.appendingPathComponent("docker-compose.broken.yml")
        try broken.write(to: brokenFile, atomically: true, encoding: .utf8)
        let result = try ComposeRunner.config(files: [brokenFile])
        #expect(result.status != 0, "docker-compose accepted a file with a \(breakage.name)")
        #expect(!result.stderr.isEmpty)
    }
}

/// One mistake to put into a copy of docker-compose.yml.
struct Breakage: Sendable, CustomTestStringConvertible {
    let name: String
    let replace: String
    let with: String
    var testDescription: String { name }
}

/// Runs `docker-compose config`.
enum ComposeRunner {
    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    /// The repository root, from this file's location (Tests/ComposeTests/).
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static let composeDirectory = repositoryRoot.appendingPathComponent("compose", isDirectory: true)

    /// The docker-compose executable on PATH, if any.
    static let executable: URL? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        return path.split(separator: ":")
            .map { URL(fileURLWithPath: String($0)).appendingPathComponent("docker-compose") }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }()

    /// Whether to run: docker-compose is present, or CI demands the tests run (and then they
    /// fail loudly when it is missing).
    static var isAvailable: Bool {
        executable != nil || ProcessInfo.processInfo.environment["CI"] == "true"
    }

    /// The caller's environment with fresh throwaway secrets, and no compose or Gantry
    /// variables that could change the rendering.
    static func testEnvironment() -> [String: String] {
        var environment = ProcessInfo.processInfo.environment.filter {
            !$0.key.hasPrefix("GANTRY_") && !$0.key.hasPrefix("COMPOSE_")
        }
        environment["GANTRY_DB_PASSWORD"] = "test-\(UUID().uuidString)"
        environment["GANTRY_DB_ADMIN_PASSWORD"] = "admin-\(UUID().uuidString)"
        environment["GANTRY_SERVICE_KEY"] = "test-service-key-\(UUID().uuidString)"
        environment["GANTRY_SECRET_KEY"] = Data((0..<32).map { _ in UInt8.random(in: .min ... .max) }).base64EncodedString()
        return environment
    }

    static func config(files: [URL], environment: [String: String] = testEnvironment()) throws -> Result {
        guard let executable else {
            throw MissingTool(description: "docker-compose is not on PATH (scripts/deps.sh installs it)")
        }
        // Output goes to files, not pipes, so neither stream can fill up and block the child.
        let scratch = FileManager.default.temporaryDirectory
            .appendingPathComponent("gantry-compose-out-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let outURL = scratch.appendingPathComponent("stdout")
        let errURL = scratch.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let out = try FileHandle(forWritingTo: outURL)
        let err = try FileHandle(forWritingTo: errURL)

        let process = Process()
        process.executableURL = executable
        process.arguments = files.flatMap { ["-f", $0.path] } + ["config"]
        process.environment = environment
        process.currentDirectoryURL = repositoryRoot
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = out
        process.standardError = err
        try process.run()
        process.waitUntilExit()
        try out.close()
        try err.close()
        return Result(
            status: process.terminationStatus,
            stdout: try String(contentsOf: outURL, encoding: .utf8),
            stderr: try String(contentsOf: errURL, encoding: .utf8))
    }

    struct MissingTool: Error, CustomStringConvertible {
        let description: String
    }
}

/// Reads the normalised YAML that `docker-compose config` prints (two-space indentation, one
/// key per line), enough for these tests without a YAML dependency.
enum RenderedCompose {
    /// The keys directly under the top-level `services:`.
    static func serviceNames(_ yaml: String) -> Set<String> {
        var names = Set<String>()
        var inServices = false
        for line in yaml.split(separator: "\n", omittingEmptySubsequences: false) {
            if !line.hasPrefix(" ") && !line.isEmpty {
                inServices = line == "services:"
                continue
            }
            guard inServices, line.hasPrefix("  "), !line.hasPrefix("   "), line.hasSuffix(":") else { continue }
            names.insert(String(line.dropFirst(2).dropLast()))
        }
        return names
    }

    /// Every value of `KEY: value` lines for this key, unquoted, in order.
    static func values(of key: String, in yaml: String) -> [String] {
        yaml.split(separator: "\n").compactMap { line in
            let trimmed = line.drop { $0 == " " }
            guard trimmed.hasPrefix("\(key): ") else { return nil }
            var value = trimmed.dropFirst(key.count + 2)
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = value.dropFirst().dropLast()
            }
            return String(value)
        }
    }
}
