import Foundation
import GantryRuntime
import HTTPTypes
import Hummingbird
import IngestionAPI
import OpenAPIHummingbird
import OpenAPIRuntime

/// The three webhook operations of ingestion.yaml (`receiveDistributionEvents`, `receiveACREvent`,
/// `receiveHarborEvent`), served by Hummingbird routes of their own rather than through the generated
/// OpenAPI server: they are the request path of every registry event, and the generated glue (media-type
/// parsing, streamed body wrappers, pretty-printed answers) cost about a third of a request's CPU (issue 5,
/// intake benchmark). The contract is the same: the same media types (others get 415), the generated
/// schema types decoded with `JSONDecoder` (a body that does not decode gets 400 naming the field), and a
/// 202 with an `EnvelopeReceipt`. The router's middleware (trace, metrics, problem+json, body limit) applies.
struct WebhookRoutes: Sendable {
    /// A webhook operation: its path and operation ID in ingestion.yaml, and the media types its request body
    /// may have (type/subtype, compared without parameters, case-insensitively).
    struct Operation: Sendable {
        let path: String
        let operationID: String
        let mediaTypes: [String]
    }

    static let distribution = Operation(
        path: "/v1/events/distribution", operationID: "receiveDistributionEvents",
        mediaTypes: ["application/vnd.docker.distribution.events.v1+json", "application/vnd.docker.distribution.events.v2+json",
                     "application/json"])
    static let acr = Operation(path: "/v1/events/acr", operationID: "receiveACREvent", mediaTypes: ["application/json"])
    static let harbor = Operation(path: "/v1/events/harbor", operationID: "receiveHarborEvent",
                                  mediaTypes: ["application/json", "application/cloudevents+json"])

    /// `POST <path>` of each operation above: what the generated server must not register.
    static let operations = [distribution, acr, harbor]

    let intake: EventIntake

    /// Adds the three routes to `router`.
    func register(on router: Router<BasicRequestContext>) {
        let intake = self.intake
        router.post(RouterPath(Self.distribution.path)) { request, _ -> Response in
            let envelope = try await Self.decode(Components.Schemas.Envelope.self, request, Self.distribution)
            return try await Self.accepted(request) { try await intake.receive(try DistributionEvents.validate(envelope), authorization: $0) }
        }
        router.post(RouterPath(Self.acr.path)) { request, _ -> Response in
            let event = try await Self.decode(Components.Schemas.Event.self, request, Self.acr)
            return try await Self.accepted(request) { try await intake.receive(try DistributionEvents.validateACR(event), authorization: $0) }
        }
        router.post(RouterPath(Self.harbor.path)) { request, _ -> Response in
            let webhook = try await Self.decode(Components.Schemas.HarborWebhook.self, request, Self.harbor)
            return try await Self.accepted(request) { try await intake.receive(try HarborEvents.validate(webhook), authorization: $0) }
        }
    }

    /// 202 with the receipt `receive` returns for the request's `Authorization` header as compact JSON; a refused
    /// secret is 401 problem+json with `WWW-Authenticate: Bearer realm="gantry-webhooks"` (RFC 6750, section 3).
    static func accepted(_ request: Request, _ receive: (String?) async throws -> Components.Schemas.EnvelopeReceipt)
        async throws -> Response {
        let receipt: Components.Schemas.EnvelopeReceipt
        do {
            receipt = try await receive(request.headers[.authorization])
        } catch let problem as ProblemError where problem.status == .unauthorized {
            return ProblemMiddleware<BasicRequestContext>.challenge(status: problem.status, detail: problem.detail,
                                                                    instance: request.uri.path, realm: "gantry-webhooks")
        }
        return Response(status: .accepted, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(receipt))))
    }

    /// The request body as `type`.
    /// - Throws: `ProblemError` 415 for another media type (or none), 400 for a body that is not that JSON.
    static func decode<T: Decodable>(_ type: T.Type, _ request: Request, _ operation: Operation) async throws -> T {
        let contentType = request.headers[.contentType]
        // The media type is what precedes any parameters (RFC 9110, section 8.3.1). Hummingbird's `MediaType`
        // cannot be used: it rejects the dots of `vnd.docker.distribution.events.v1+json`.
        let essence = contentType.map { $0.prefix { $0 != ";" }.filter { $0 != " " && $0 != "\t" }.lowercased() }
        guard let essence, operation.mediaTypes.contains(essence) else {
            throw ProblemError(.unsupportedMediaType, "the request is not valid for operation \(operation.operationID): "
                + "Content-Type \(contentType.map { "'\($0.prefix(100))'" } ?? "missing"); expected one of "
                + operation.mediaTypes.joined(separator: ", "))
        }
        var request = request
        // BodyLimitMiddleware has already collected the body within the service's limit.
        let body = try await request.collectBody(upTo: .max)
        do {
            return try decoder.decode(T.self, from: Data(body.readableBytesView))
        } catch {
            throw ProblemError.badRequest("the request is not valid for operation \(operation.operationID): "
                + ProblemMiddleware<BasicRequestContext>.describe(error))
        }
    }

    // JSONDecoder and JSONEncoder are thread-safe once configured (swift-foundation).
    private static let decoder = JSONDecoder()
    private static let encoder = JSONEncoder()
}

/// Registers the generated server's routes except the operations `WebhookRoutes` serves.
struct WithoutWebhookRoutes: ServerTransport {
    let router: Router<BasicRequestContext>

    func register(_ handler: @Sendable @escaping (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws
                    -> (HTTPResponse, HTTPBody?),
                  method: HTTPRequest.Method, path: String) throws {
        guard method != .post || !WebhookRoutes.operations.contains(where: { $0.path == path }) else { return }
        try router.register(handler, method: method, path: path)
    }
}
