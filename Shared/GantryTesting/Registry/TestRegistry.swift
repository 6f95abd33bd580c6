import Foundation

/// A real registry for tests: Debian's `docker-registry` (distribution 2.8, `docker-registry serve
/// CONFIG`) on `127.0.0.1:<free port>`, storing blobs in a temporary directory.
///
/// `stop()` (also run on deinit) terminates the process and removes the directory.
package final class TestRegistry: @unchecked Sendable {
    /// Token authentication settings (`auth.token`, Distribution "Token Authentication
    /// Specification"): the registry accepts JWTs signed by a key whose certificate is in
    /// `rootCertBundle` and sends clients to `realm` for them.
    package struct TokenAuth: Sendable {
        package var realm: URL
        package var service: String
        package var issuer: String
        /// A PEM file of the certificates whose keys may sign tokens.
        package var rootCertBundle: URL

        package init(realm: URL, service: String, issuer: String, rootCertBundle: URL) {
            self.realm = realm
            self.service = service
            self.issuer = issuer
            self.rootCertBundle = rootCertBundle
        }
    }

    /// The registry could not be started or did not answer.
    package struct StartFailure: Error, CustomStringConvertible {
        package let message: String
        package let registryOutput: String
        package var description: String {
            "\(message)\(registryOutput.isEmpty ? "" : "\n--- docker-registry output ---\n\(registryOutput)")"
        }
    }

    /// `/usr/bin/docker-registry`, or `DOCKER_REGISTRY` when set.
    package static var executable: String {
        ProcessInfo.processInfo.environment["DOCKER_REGISTRY"] ?? "/usr/bin/docker-registry"
    }

    /// `127.0.0.1:PORT`.
    package let host: String
    /// The port the registry listens on.
    package let port: Int
    /// `http://127.0.0.1:PORT`.
    package let baseURL: URL
    /// The filesystem driver's root; blobs are at `docker/registry/v2/blobs/sha256/<2 hex>/<hex>/data`.
    package let storageDirectory: URL
    /// Where the registry's stdout and stderr go.
    package let logFile: URL

    private let directory: URL
    private let process: Process
    private let lock = NSLock()
    private var stopped = false

    private init(port: Int, directory: URL, process: Process) {
        self.port = port
        let host = "127.0.0.1:\(port)"
        self.host = host
        self.directory = directory
        self.process = process
        self.storageDirectory = directory.appendingPathComponent("storage")
        self.logFile = directory.appendingPathComponent("registry.log")
        // "http://" + "127.0.0.1:PORT" is always a valid URL.
        self.baseURL = URL(string: "http://\(host)") ?? URL(fileURLWithPath: "/")
    }

    deinit { stop() }

    /// The file the filesystem driver keeps a blob's bytes in (for corrupting one on purpose).
    package func blobDataFile(hex: String) -> URL {
        storageDirectory.appendingPathComponent("docker/registry/v2/blobs/sha256/\(hex.prefix(2))/\(hex)/data")
    }

    /// Everything the registry printed so far.
    package var output: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    /// The registry's process ID (fault tests freeze it with SIGSTOP and thaw it with SIGCONT).
    package var processIdentifier: Int32 { process.processIdentifier }

    /// Starts a registry and waits (up to 60 s, generous for a loaded CI machine) until `GET /v2/` answers 200 or 401.
    ///
    /// - Parameters:
    ///   - basicAuth: enables `auth.htpasswd` with this one user (bcrypt, made with `htpasswd -Bbn`
    ///     from Debian's `apache2-utils`).
    ///   - tokenAuth: enables `auth.token`; exclusive with `basicAuth`.
    ///   - notifyURL: one notification endpoint (`notifications.endpoints`, name `gantry`, timeout 1 s,
    ///     threshold 5, backoff 1 s) with `notifyHeaders`.
    /// - Throws: `StartFailure` with the registry's output when it exits or never answers.
    package static func start(basicAuth: (user: String, password: String)? = nil, tokenAuth: TokenAuth? = nil,
                              notifyURL: URL? = nil, notifyHeaders: [String: String] = [:]) async throws -> TestRegistry {
        var lastFailure: StartFailure?
        // A free port can be taken between finding and binding it; try a few.
        for _ in 0..<3 {
            let port = try FreePort.next()
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-registry-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory.appendingPathComponent("storage"),
                                                    withIntermediateDirectories: true)
            let host = "127.0.0.1:\(port)"
            let configURL = directory.appendingPathComponent("config.yml")
            var configuration: [String: Any] = [
                "version": "0.1",
                "log": ["level": "info", "accesslog": ["disabled": false]],
                "http": ["addr": host, "secret": UUID().uuidString],
                "storage": [
                    "filesystem": ["rootdirectory": directory.appendingPathComponent("storage").path],
                    "delete": ["enabled": true],
                ],
            ]
            if let basicAuth {
                let htpasswd = directory.appendingPathComponent("htpasswd")
                let line = try ProcessRunner.run(htpasswdExecutable, ["-Bbn", basicAuth.user, basicAuth.password]).stdout
                try Data(line.utf8).write(to: htpasswd)
                configuration["auth"] = ["htpasswd": ["realm": "gantry-test", "path": htpasswd.path]]
            } else if let tokenAuth {
                configuration["auth"] = ["token": [
                    "realm": tokenAuth.realm.absoluteString, "service": tokenAuth.service,
                    "issuer": tokenAuth.issuer, "rootcertbundle": tokenAuth.rootCertBundle.path,
                ]]
            }
            if let notifyURL {
                configuration["notifications"] = ["endpoints": [[
                    "name": "gantry", "url": notifyURL.absoluteString,
                    "headers": notifyHeaders.mapValues { [$0] },
                    "timeout": "1s", "threshold": 5, "backoff": "1s",
                ]]]
            }
            // JSON is YAML (without `\/`, which YAML lacks); it spares quoting rules for paths, URLs and headers.
            try JSONSerialization.data(withJSONObject: configuration, options: [.sortedKeys, .withoutEscapingSlashes]).write(to: configURL)

            let logURL = directory.appendingPathComponent("registry.log")
            _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
            let log = try FileHandle(forWritingTo: logURL)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = ["serve", configURL.path]
            process.standardOutput = log
            process.standardError = log
            process.standardInput = FileHandle.nullDevice
            do {
                try process.run()
            } catch {
                try? log.close()
                try? FileManager.default.removeItem(at: directory)
                throw StartFailure(message: "could not start \(executable) (apt-get install docker-registry): \(error)",
                                   registryOutput: "")
            }
            try? log.close()
            let registry = TestRegistry(port: port, directory: directory, process: process)
            do {
                try await registry.waitUntilReady(timeout: .seconds(60))
                return registry
            } catch let failure as StartFailure {
                registry.stop(removeFiles: false)
                lastFailure = StartFailure(message: failure.message, registryOutput: registry.output)
                try? FileManager.default.removeItem(at: directory)
                // Only a lost port race is worth another try.
                guard lastFailure?.registryOutput.contains("address already in use") == true else { break }
            }
        }
        throw lastFailure ?? StartFailure(message: "docker-registry did not start", registryOutput: "")
    }

    /// `/usr/bin/htpasswd` (Debian `apache2-utils`), or `HTPASSWD` when set.
    package static var htpasswdExecutable: String {
        ProcessInfo.processInfo.environment["HTPASSWD"] ?? "/usr/bin/htpasswd"
    }

    /// Polls `GET /v2/` every 100 ms.
    private func waitUntilReady(timeout: Duration) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        var last = "no answer"
        while ContinuousClock.now < deadline {
            guard process.isRunning else {
                throw StartFailure(message: "docker-registry exited with status \(process.terminationStatus) before answering on \(host)",
                                   registryOutput: output)
            }
            if let status = HTTPProbe.status(port: port, path: "/v2/") {
                if status == 200 || status == 401 { return }
                last = "HTTP \(status)"
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw StartFailure(message: "docker-registry on \(host) did not answer GET /v2/ within \(timeout) (last: \(last))",
                           registryOutput: output)
    }

    /// Terminates the registry (SIGTERM, then SIGKILL after 5 s) and removes its files. Idempotent.
    package func stop() {
        stop(removeFiles: true)
    }

    private func stop(removeFiles: Bool) {
        lock.lock()
        defer { lock.unlock() }
        guard !stopped else { return }
        stopped = true
        if process.isRunning {
            process.terminate()
            let deadline = Date().addingTimeInterval(5)
            while process.isRunning, Date() < deadline { usleep(20_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        if removeFiles { try? FileManager.default.removeItem(at: directory) }
    }
}
