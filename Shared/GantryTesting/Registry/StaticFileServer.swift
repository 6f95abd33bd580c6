import Foundation

/// Serves one directory over HTTP on `127.0.0.1:<free port>` with Python's `http.server`
/// (`python3 -m http.server`), for tests that need a fixed answer at a URL, such as a token
/// endpoint returning a pre-signed token. Query strings are ignored: `/token?scope=…` serves the
/// file `token`. Each request is logged to `logFile`, one line each.
package final class StaticFileServer: @unchecked Sendable {
    package let port: Int
    /// `http://127.0.0.1:PORT`.
    package let baseURL: URL
    /// The served directory; write files into it before or after starting.
    package let directory: URL
    package let logFile: URL

    private let process: Process
    private let lock = NSLock()
    private var stopped = false

    private init(port: Int, directory: URL, logFile: URL, process: Process) {
        self.port = port
        self.directory = directory
        self.logFile = logFile
        self.process = process
        self.baseURL = URL(string: "http://127.0.0.1:\(port)") ?? URL(fileURLWithPath: "/")
    }

    deinit { stop() }

    /// The request lines logged so far, such as `GET /token?service=…&scope=… HTTP/1.1`.
    package var requests: [String] {
        let log = (try? String(contentsOf: logFile, encoding: .utf8)) ?? ""
        return log.split(separator: "\n").compactMap { line in
            guard let start = line.firstIndex(of: "\""), let end = line[line.index(after: start)...].firstIndex(of: "\"") else { return nil }
            return String(line[line.index(after: start)..<end])
        }
    }

    /// Starts the server and waits (up to 10 s) until it answers.
    /// - Throws: `TestRegistry.StartFailure` with the server's output when it does not.
    package static func start(serving directory: URL) async throws -> StaticFileServer {
        let port = try FreePort.next()
        let logFile = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-static-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
        let log = try FileHandle(forWritingTo: logFile)
        defer { try? log.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-u", "-m", "http.server", String(port), "--bind", "127.0.0.1",
                             "--directory", directory.path]
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let server = StaticFileServer(port: port, directory: directory, logFile: logFile, process: process)
        let deadline = ContinuousClock.now.advanced(by: .seconds(60))
        while ContinuousClock.now < deadline {
            guard process.isRunning else { break }
            if HTTPProbe.status(port: port, path: "/") != nil { return server }
            try await Task.sleep(for: .milliseconds(100))
        }
        let output = (try? String(contentsOf: logFile, encoding: .utf8)) ?? ""
        server.stop()
        throw TestRegistry.StartFailure(message: "python3 -m http.server did not answer on port \(port)", registryOutput: output)
    }

    /// Kills the server and removes its log. Idempotent.
    package func stop() {
        lock.lock()
        defer { lock.unlock() }
        guard !stopped else { return }
        stopped = true
        if process.isRunning {
            // SIGKILL, not SIGTERM: Python inherits the test process's blocked signal mask and would
            // never see SIGTERM; a static server has nothing to flush.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: logFile)
    }
}
