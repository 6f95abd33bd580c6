import Foundation

/// A scripted HTTP front for a `TestRegistry`, and a blob store beside it, for testing how a client copes
/// with a busy registry and with blob storage behind redirects. One `python3` process (`http.server`,
/// as `StaticFileServer`) serves two ports of 127.0.0.1:
///
/// - the **front** forwards every request to the registry (headers, `Authorization` included), except
///   that requests whose path contains a rule's `match` are first answered by the rule's scripted
///   statuses, one per request (429 or 503 with or without `Retry-After`, as Docker Hub and
///   distribution's rate limiting answer); with `redirectBlobs`, blob GETs are answered `307` with a
///   `Location` on the store, as registries backed by S3, GCS or Azure do (distribution spec, "Pulling
///   blobs": "the registry MAY redirect");
/// - the **store** serves `/blobs/sha256/<hex>` from the registry's storage directory, after its own
///   scripted answers, and refuses (400) any request that carries an `Authorization` header, as S3 refuses
///   a pre-signed URL request with a second authentication mechanism.
///
/// Every request is logged (`requests`) with the server, method, path, the `Authorization` value, the
/// status answered and a monotonic timestamp, so tests can check what a client sent, when and how often.
package final class ScriptedRegistryFront: @unchecked Sendable {
    /// Which of the two servers a rule or a logged request belongs to.
    package enum Server: String, Sendable, Decodable {
        case front
        case store
    }

    /// One scripted answer: a status and optionally a `Retry-After` value (seconds or an HTTP-date).
    package struct Answer: Sendable, Encodable {
        package var status: Int
        package var retryAfter: String?

        package init(_ status: Int, retryAfter: String? = nil) {
            self.status = status
            self.retryAfter = retryAfter
        }
    }

    /// Answers for the requests to `server` whose path contains `match`, used up in order, one per request.
    package struct Rule: Sendable, Encodable {
        package var server: Server
        package var match: String
        package var answers: [Answer]

        package init(_ server: Server = .front, match: String, answers: [Answer]) {
            self.server = server
            self.match = match
            self.answers = answers
        }

        enum CodingKeys: String, CodingKey { case server, match, answers }

        package func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(server.rawValue, forKey: .server)
            try container.encode(match, forKey: .match)
            try container.encode(answers, forKey: .answers)
        }
    }

    /// One logged request.
    package struct Request: Sendable, Decodable {
        package var server: Server
        package var method: String
        /// Path and query as sent.
        package var path: String
        package var authorization: String?
        package var status: Int
        /// Seconds on the server's monotonic clock.
        package var time: Double
    }

    /// `http://127.0.0.1:PORT` of the front: use it as the registry's base URL.
    package let baseURL: URL
    /// `http://127.0.0.1:PORT` of the blob store.
    package let storeURL: URL

    private let process: Process
    private let directory: URL
    private let logFile: URL
    private let lock = NSLock()
    private var stopped = false

    private init(baseURL: URL, storeURL: URL, process: Process, directory: URL) {
        self.baseURL = baseURL
        self.storeURL = storeURL
        self.process = process
        self.directory = directory
        self.logFile = directory.appendingPathComponent("requests.jsonl")
    }

    deinit { stop() }

    /// Every request answered so far, in order (readiness probes excepted).
    package var requests: [Request] {
        let text = (try? String(contentsOf: logFile, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { try? JSONDecoder().decode(Request.self, from: Data($0.utf8)) }
    }

    /// Starts the front and the store for `registry` and waits (up to 60 s) until both answer.
    /// - Parameters:
    ///   - rules: scripted answers, checked in order for each request.
    ///   - redirectBlobs: answer blob GETs with `307` to the store instead of forwarding them.
    /// - Throws: `TestRegistry.StartFailure` with the server's output when it does not start.
    package static func start(for registry: TestRegistry, rules: [Rule] = [], redirectBlobs: Bool = false) async throws
        -> ScriptedRegistryFront {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-front-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let frontPort = try FreePort.next()
        let storePort = try FreePort.next()
        struct Configuration: Encodable {
            var upstream: String
            var storage: String
            var frontPort: Int
            var storePort: Int
            var redirectBlobs: Bool
            var rules: [Rule]
            var log: String
        }
        let configuration = Configuration(upstream: registry.host, storage: registry.storageDirectory.path, frontPort: frontPort,
                                          storePort: storePort, redirectBlobs: redirectBlobs, rules: rules,
                                          log: directory.appendingPathComponent("requests.jsonl").path)
        let configURL = directory.appendingPathComponent("config.json")
        try JSONEncoder().encode(configuration).write(to: configURL)
        let scriptURL = directory.appendingPathComponent("front.py")
        try Data(script.utf8).write(to: scriptURL)

        let outputURL = directory.appendingPathComponent("output.log")
        _ = FileManager.default.createFile(atPath: outputURL.path, contents: nil)
        let output = try FileHandle(forWritingTo: outputURL)
        defer { try? output.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-u", scriptURL.path, configURL.path]
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let server = ScriptedRegistryFront(baseURL: URL(string: "http://127.0.0.1:\(frontPort)") ?? URL(fileURLWithPath: "/"),
                                           storeURL: URL(string: "http://127.0.0.1:\(storePort)") ?? URL(fileURLWithPath: "/"),
                                           process: process, directory: directory)
        let deadline = ContinuousClock.now.advanced(by: .seconds(60))
        while ContinuousClock.now < deadline, process.isRunning {
            if HTTPProbe.status(port: storePort, path: "/readyz") == 200, HTTPProbe.status(port: frontPort, path: "/readyz") == 200 {
                return server
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        let text = (try? String(contentsOf: outputURL, encoding: .utf8)) ?? ""
        server.stop()
        throw TestRegistry.StartFailure(message: "the scripted registry front did not answer on ports \(frontPort) and \(storePort)",
                                        registryOutput: text)
    }

    /// Kills the server and removes its files. Idempotent.
    package func stop() {
        lock.lock()
        defer { lock.unlock() }
        guard !stopped else { return }
        stopped = true
        if process.isRunning {
            // SIGKILL: Python inherits the test process's blocked signal mask and would not see SIGTERM.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// The server, in Python's standard library only.
    private static let script = #"""
    import http.client, http.server, json, os, sys, threading, time

    config = json.load(open(sys.argv[1]))
    lock = threading.Lock()
    rules = config["rules"]

    def take(server, path):
        with lock:
            for rule in rules:
                if rule["server"] == server and rule["match"] in path and rule["answers"]:
                    return rule["answers"].pop(0)
        return None

    def record(server, handler, status):
        line = json.dumps({"server": server, "method": handler.command, "path": handler.path,
                           "authorization": handler.headers.get("Authorization"), "status": status,
                           "time": time.monotonic()})
        with lock:
            with open(config["log"], "a") as log:
                log.write(line + "\n")

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_name = "front"

        def log_message(self, *args):
            pass

        def send(self, status, body=b"", headers=()):
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            if self.path != "/readyz":
                record(self.server_name, self, status)

        def scripted(self):
            if self.path == "/readyz":
                self.send(200, b"ok")
                return True
            answer = take(self.server_name, self.path)
            if answer is None:
                return False
            headers = [("Content-Type", "application/json")]
            if answer.get("retryAfter") is not None:
                headers.append(("Retry-After", answer["retryAfter"]))
            body = json.dumps({"errors": [{"code": "TOOMANYREQUESTS" if answer["status"] == 429 else "UNAVAILABLE",
                                           "message": "scripted answer %d" % answer["status"]}]}).encode()
            self.send(answer["status"], body, headers)
            return True

    class Front(Handler):
        server_name = "front"

        def do_GET(self):
            self.handle_request()

        def do_HEAD(self):
            self.handle_request()

        def handle_request(self):
            if self.scripted():
                return
            if config["redirectBlobs"] and self.command == "GET" and "/blobs/sha256:" in self.path:
                digest = self.path.split("/blobs/", 1)[1].split("?", 1)[0]
                location = "http://127.0.0.1:%d/blobs/%s?X-Amz-Signature=scripted" % (config["storePort"], digest.replace(":", "/"))
                self.send(307, b"", [("Location", location)])
                return
            upstream = http.client.HTTPConnection(config["upstream"], timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            upstream.request(self.command, self.path, headers=headers)
            response = upstream.getresponse()
            body = response.read()
            passed = [(k, v) for k, v in response.getheaders()
                      if k.lower() not in ("connection", "transfer-encoding", "content-length", "date", "server")]
            upstream.close()
            self.send(response.status, body, passed)

    class Store(Handler):
        server_name = "store"

        def do_GET(self):
            if self.scripted():
                return
            if self.headers.get("Authorization") is not None:
                self.send(400, b"<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>",
                          [("Content-Type", "application/xml")])
                return
            parts = self.path.split("?", 1)[0].split("/")
            if len(parts) != 4 or parts[1] != "blobs" or parts[2] != "sha256" or len(parts[3]) != 64:
                self.send(404)
                return
            hex = parts[3]
            path = os.path.join(config["storage"], "docker/registry/v2/blobs/sha256", hex[:2], hex, "data")
            if not os.path.isfile(path):
                self.send(404)
                return
            with open(path, "rb") as blob:
                self.send(200, blob.read(), [("Content-Type", "application/octet-stream")])

    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", config["frontPort"]), Front),
               http.server.ThreadingHTTPServer(("127.0.0.1", config["storePort"]), Store)]
    for server in servers:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    threading.Event().wait()
    """#
}
