import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Notification

/// The demo's webhook receiver: a Hummingbird route that records each delivery and checks its
/// `X-Gantry-Signature` (HMAC-SHA256 over `X-Gantry-Timestamp`, a full stop and the body) with the shared secret.
actor WebhookReceiver {
    struct Received: Sendable {
        var body: String
        var signatureValid: Bool
    }

    nonisolated let secret: String
    private(set) var received: [Received] = []

    init(secret: String) { self.secret = secret }

    func record(_ item: Received) {
        received.append(item)
    }

    /// Serves `POST /webhook` on 127.0.0.1:`port` until cancelled.
    func run(port: Int) async throws {
        let router = Router()
        let secret = self.secret
        router.post("/webhook") { request, context -> HTTPResponse.Status in
            let buffer = try await request.body.collect(upTo: 1 << 20)
            let body = String(buffer: buffer)
            let signature = request.headers[HTTPField.Name(WebhookSignature.header)!] ?? ""
            let timestamp = request.headers[HTTPField.Name(WebhookSignature.timestampHeader)!] ?? ""
            let valid = WebhookSignature.verify(signature: signature, timestamp: timestamp, body: Data(body.utf8),
                                                secret: secret) == .valid
            await self.record(Received(body: body, signatureValid: valid))
            return valid ? .noContent : .unauthorized
        }
        var logger = Logger(label: "gantry-demo-webhook")
        // Its only error is the cancellation at the demo's end, which is expected.
        logger.logLevel = .critical
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: logger)
        try await app.runService(gracefulShutdownSignals: [])
    }
}
