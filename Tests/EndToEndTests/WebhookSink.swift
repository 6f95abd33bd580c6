import Foundation
import Hummingbird
import HTTPTypes
import Notification

/// A real webhook receiver for the end-to-end test: records every POST with its signature check.
actor WebhookSink {
    struct Delivery: Sendable {
        var body: Data
        var signatureValid: Bool
        var event: String?
    }

    let secret: String
    private(set) var deliveries: [Delivery] = []

    init(secret: String) { self.secret = secret }

    func record(_ delivery: Delivery) { deliveries.append(delivery) }

    /// An application serving `POST /hook` and `GET /readyz` on 127.0.0.1:`port`.
    nonisolated func application(port: Int) -> some ApplicationProtocol {
        let router = Router()
        router.get("/readyz") { _, _ in HTTPResponse.Status.ok }
        router.post("/hook") { request, _ -> HTTPResponse.Status in
            let body = Data(try await request.body.collect(upTo: 1 << 20).readableBytesView)
            let signature = request.headers[HTTPField.Name(WebhookSignature.header)!] ?? ""
            let timestamp = request.headers[HTTPField.Name(WebhookSignature.timestampHeader)!] ?? ""
            let valid = WebhookSignature.verify(signature: signature, timestamp: timestamp, body: body, secret: self.secret) == .valid
            await self.record(Delivery(body: body, signatureValid: valid,
                                       event: request.headers[HTTPField.Name("X-Gantry-Event")!]))
            return .noContent
        }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
    }
}
