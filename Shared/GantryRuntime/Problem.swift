import Foundation
import HTTPTypes
import Hummingbird
import Logging
import OpenAPIRuntime

/// An error that becomes an RFC 9457 `application/problem+json` response.
///
/// Handlers throw it for client errors (400, 404, 409, 413) with a `detail` that says exactly what was wrong.
public struct ProblemError: Error, CustomStringConvertible, Sendable {
    public let status: HTTPResponse.Status
    public let title: String
    public let detail: String

    public init(_ status: HTTPResponse.Status, _ detail: String, title: String? = nil) {
        self.status = status
        self.detail = detail
        self.title = title ?? status.reasonPhrase
    }

    public var description: String { "\(status.code) \(title): \(detail)" }

    public static func badRequest(_ detail: String) -> ProblemError { .init(.badRequest, detail) }
    public static func notFound(_ detail: String) -> ProblemError { .init(.notFound, detail) }
    public static func conflict(_ detail: String) -> ProblemError { .init(.conflict, detail) }
    public static func tooLarge(_ detail: String) -> ProblemError { .init(.contentTooLarge, detail) }
    public static func badGateway(_ detail: String) -> ProblemError { .init(.badGateway, detail) }
    public static func `internal`(_ detail: String) -> ProblemError { .init(.internalServerError, detail) }
}

/// The body of a problem response (RFC 9457, section 3.1).
struct ProblemDocument: Encodable {
    let type: String
    let title: String
    let status: Int
    let detail: String
    let instance: String?
}

/// Turns every error a route throws into `application/problem+json` (RFC 9457): `ProblemError` as given,
/// request decoding failures from the generated OpenAPI server as 400 with the decoder's explanation,
/// anything else as 500 without internals. No error escapes to crash the service.
public struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context,
                       next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let (status, detail) = Self.classify(error)
            if status.code >= 500 {
                context.logger.error("request failed", metadata: ["error": "\(String(reflecting: error))"])
            }
            return Self.response(status: status, detail: detail, instance: request.uri.path)
        }
    }

    static func classify(_ error: any Error) -> (HTTPResponse.Status, String) {
        switch error {
        case let problem as ProblemError:
            return (problem.status, problem.detail)
        case let serverError as ServerError:
            if let problem = serverError.underlyingError as? ProblemError { return (problem.status, problem.detail) }
            // The generated server marks request errors (parameters, content type, body) with a cause and a 4xx
            // status; anything else came out of a handler and is the service's own failure.
            if serverError.underlyingError is DecodingError {
                return (.badRequest, "the request is not valid for operation \(serverError.operationID): "
                    + describe(serverError.underlyingError, query: serverError.request.path))
            }
            if serverError.causeDescription != "Unknown", (400..<500).contains(serverError.httpStatus.code) {
                // A runtime error without a cause of its own (a wrong Content-Type: 415) is its own underlying
                // error, with the same text: say it once.
                let underlying = describe(serverError.underlyingError)
                let cause = underlying == serverError.causeDescription ? underlying : "\(serverError.causeDescription): \(underlying)"
                return (serverError.httpStatus, "the request is not valid for operation \(serverError.operationID): \(cause)")
            }
            return (.internalServerError, "an internal error occurred; see the service log")
        case let httpError as HTTPError:
            return (httpError.status, httpError.body ?? httpError.status.reasonPhrase)
        default:
            return (.internalServerError, "an internal error occurred; see the service log")
        }
    }

    /// What a decoding error says about the request, for a 400's `detail`: the kind of fault and the field's path
    /// (`.events[0].target`), in JSON's terms rather than Swift's, never the body itself. A value outside an
    /// enumeration is named with its query parameter when `query` (the request target) has it. Other errors as
    /// they describe themselves.
    public static func describe(_ error: any Error, query: String? = nil) -> String {
        switch error {
        case DecodingError.dataCorrupted(let context):
            if let value = invalidValue(context.debugDescription) {
                if context.codingPath.isEmpty, let name = queryParameter(holding: value, in: query) {
                    return "'\(value.prefix(100))' is not an allowed value of query parameter '\(name)' (see /openapi.yaml)"
                }
                return "'\(value.prefix(100))' is not an allowed value at \(path(context.codingPath)) (see /openapi.yaml)"
            }
            return "malformed JSON at \(path(context.codingPath)): \(context.debugDescription)"
        case DecodingError.keyNotFound(let key, let context):
            return "missing field '\(key.stringValue)' at \(path(context.codingPath))"
        case DecodingError.typeMismatch(let type, let context):
            return "wrong type at \(path(context.codingPath)): expected \(jsonName(of: type))"
        case DecodingError.valueNotFound(let type, let context):
            return "null where \(jsonName(of: type)) is required at \(path(context.codingPath))"
        default:
            return "\(error)"
        }
    }

    /// The value of Foundation's "Cannot initialize <Type> from invalid <kind> value <value>" (a raw-value enum).
    private static func invalidValue(_ description: String) -> String? {
        guard description.hasPrefix("Cannot initialize "), let range = description.range(of: " value ") else { return nil }
        return String(description[range.upperBound...])
    }

    /// The name of the first query parameter of `target` whose (decoded) value is `value`.
    private static func queryParameter(holding value: String, in target: String?) -> String? {
        guard let target, let items = URLComponents(string: target)?.queryItems else { return nil }
        return items.first { $0.value == value }?.name
    }

    /// A Swift type as JSON calls it: object, array, string, number, boolean.
    private static func jsonName(of type: Any.Type) -> String {
        let name = String(describing: type)
        if name.hasPrefix("Dictionary") { return "an object" }
        if name.hasPrefix("Array") { return "an array" }
        if name == "String" || name == "Date" { return "a string" }
        if ["Int", "Int32", "Int64", "Double", "Float", "Decimal", "UInt", "UInt32", "UInt64"].contains(name) { return "a number" }
        if name == "Bool" { return "a boolean" }
        // A schema of the contract: its name there.
        return name.split(separator: ".").last.map(String.init) ?? name
    }

    private static func path(_ codingPath: [any CodingKey]) -> String {
        codingPath.isEmpty ? "the top level" : codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
    }

    /// A 401 or 403 problem+json with the Bearer challenge RFC 6750 (section 3) asks for:
    /// `WWW-Authenticate: Bearer realm="<realm>"`, with `error="<error>"` when given (`invalid_token`,
    /// `insufficient_scope`).
    public static func challenge(status: HTTPResponse.Status, detail: String, instance: String?, realm: String,
                                 error: String? = nil) -> Response {
        var response = self.response(status: status, detail: detail, instance: instance)
        response.headers[.wwwAuthenticate] = #"Bearer realm="\#(realm)""# + (error.map { #", error="\#($0)""# } ?? "")
        return response
    }

    /// A problem+json response.
    public static func response(status: HTTPResponse.Status, detail: String, instance: String?) -> Response {
        let document = ProblemDocument(type: "about:blank", title: status.reasonPhrase, status: status.code,
                                       detail: detail, instance: instance)
        let data = (try? JSONEncoder().encode(document)) ?? Data()
        return Response(status: status, headers: [.contentType: "application/problem+json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// Rejects bodies larger than the configured limit with 413 before any handler reads them.
public struct BodyLimitMiddleware<Context: RequestContext>: RouterMiddleware {
    let maxBytes: Int

    public init(maxBytes: Int) { self.maxBytes = maxBytes }

    public func handle(_ request: Request, context: Context,
                       next: (Request, Context) async throws -> Response) async throws -> Response {
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > maxBytes {
            throw ProblemError(.contentTooLarge, "the request body of \(length) bytes exceeds the limit of \(maxBytes) bytes")
        }
        var request = request
        do {
            _ = try await request.collectBody(upTo: maxBytes)
        } catch {
            throw ProblemError(.contentTooLarge, "the request body exceeds the limit of \(maxBytes) bytes")
        }
        return try await next(request, context)
    }
}
