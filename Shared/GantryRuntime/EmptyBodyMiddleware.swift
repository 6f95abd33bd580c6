import HTTPTypes
import OpenAPIRuntime

/// Hands the generated server an empty request body as no body (RFC 9110, section 8.6: a message with
/// `Content-Length: 0`, or none at all, has no content). OpenAPIHummingbird passes every request's body, empty or
/// not, so an operation whose body is optional (ingestion's `PUT …/webhook-secret`) refused an empty one as
/// malformed JSON, and a required one was reported as malformed JSON instead of missing. Bodies are already
/// collected within the service's limit (`BodyLimitMiddleware`), so reading one here costs no extra I/O.
public struct EmptyBodyMiddleware: ServerMiddleware {
    public init() {}

    public func intercept(_ request: HTTPRequest, body: HTTPBody?, metadata: ServerRequestMetadata, operationID: String,
                          next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?))
        async throws -> (HTTPResponse, HTTPBody?) {
        guard let body else { return try await next(request, nil, metadata) }
        if case .known(let length) = body.length { return try await next(request, length == 0 ? nil : body, metadata) }
        let bytes = try await [UInt8](collecting: body, upTo: .max)
        return try await next(request, bytes.isEmpty ? nil : HTTPBody(bytes), metadata)
    }
}
