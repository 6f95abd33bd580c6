import Foundation
import GantryTesting
import HTTPTypes
import Hummingbird
import Logging
import Notification
import ServiceLifecycle

/// A real HTTP receiver for deliveries: records every POST with its exact body and headers, and answers
/// as told: a status, or hanging until released (a receiver that never answers).
actor WebhookReceiver {
    struct Received: Sendable {
        var path: String
        var body: Data
        var headers: [String: String]
        var answered: Int
        var at: Date

        var signature: String? { headers[WebhookSignature.header.lowercased()] }
        var timestamp: String? { headers[WebhookSignature.timestampHeader.lowercased()] }
        var event: String? { headers["x-gantry-event"] }
        var deliveryID: String? { headers["x-gantry-delivery"] }
        var contentType: String? { headers["content-type"] }
        func json() throws -> [String: Any] {
            try JSONSerialization.jsonObject(with: body) as? [String: Any] ?? [:]
        }
    }

    enum Mode: Sendable {
        case answer(HTTPResponse.Status)
        /// Never answers until `release()` (or 20 s).
        case hang
    }

    private(set) var mode: Mode
    private(set) var received: [Received] = []
    private var released = false

    init(mode: Mode = .answer(.noContent)) { self.mode = mode }

    func set(_ mode: Mode) { self.mode = mode }

    func release() { released = true }

    func record(path: String, body: Data, headers: HTTPFields) async -> HTTPResponse.Status {
        var map: [String: String] = [:]
        for field in headers { map[field.name.canonicalName] = field.value }
        switch mode {
        case .answer(let status):
            received.append(Received(path: path, body: body, headers: map, answered: Int(status.code), at: Date()))
            return status
        case .hang:
            received.append(Received(path: path, body: body, headers: map, answered: 0, at: Date()))
            let deadline = ContinuousClock.now + .seconds(20)
            while !released && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
            return .ok
        }
    }

    /// The receiver as a service on 127.0.0.1:`port`: `POST /hook` (and any path under it), `POST /redirect`
    /// (a 307 to `/hook`, which must not be followed), `GET /readyz`.
    nonisolated func application(port: Int) -> some ApplicationProtocol {
        let router = Router()
        router.get("/readyz") { _, _ in HTTPResponse.Status.ok }
        router.post("/redirect") { _, _ -> Response in
            Response(status: .temporaryRedirect, headers: [.location: "/hook"])
        }
        let handler: @Sendable (Request, BasicRequestContext) async throws -> HTTPResponse.Status = { request, _ in
            let body = Data(try await request.body.collect(upTo: 4 << 20).readableBytesView)
            return await self.record(path: request.uri.path, body: body, headers: request.headers)
        }
        router.post("/hook", use: handler)
        router.post("/hook/{name}", use: handler)
        var logger = Logger(label: "webhook-receiver")
        logger.logLevel = .critical
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: logger)
    }
}

/// Runs `application` for the length of `body`, after it answers `/readyz` on `port`.
func whileRunning<T: Sendable>(_ application: some ApplicationProtocol, port: Int,
                               _ body: @Sendable () async throws -> T) async throws -> T {
    try await withRunningServices([application], readyPorts: [port], body)
}
