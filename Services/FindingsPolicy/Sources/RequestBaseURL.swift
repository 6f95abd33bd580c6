import Foundation
import HTTPTypes
import Hummingbird

/// The scheme and authority the client used to reach this service, so that `nextLink` is an absolute URL
/// as Azure's pagers expect. Behind a proxy, `X-Forwarded-Proto` and `X-Forwarded-Host` win over `Host`.
enum RequestBaseURL {
    @TaskLocal static var current: String?

    /// `scheme://authority` from a request's headers; nil without a usable authority.
    static func from(authority: String?, forwardedHost: String?, forwardedProto: String?) -> String? {
        let host = (forwardedHost?.split(separator: ",").first.map(String.init) ?? authority)?
            .trimmingCharacters(in: .whitespaces)
        // An authority is host[:port]: anything else (a path, a userinfo, spaces) is not echoed back.
        guard let host, !host.isEmpty, host.count <= 255,
              host.allSatisfy({ $0.isLetter || $0.isNumber || ".-:[]_".contains($0) }) else { return nil }
        let proto = forwardedProto?.split(separator: ",").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        return "\(proto == "https" ? "https" : "http")://\(host)"
    }
}

/// Sets `RequestBaseURL.current` for the handlers of one request.
struct RequestBaseURLMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context,
                next: (Request, Context) async throws -> Response) async throws -> Response {
        let base = RequestBaseURL.from(
            authority: request.head.authority,
            forwardedHost: request.headers[HTTPField.Name("X-Forwarded-Host")!],
            forwardedProto: request.headers[HTTPField.Name("X-Forwarded-Proto")!])
        return try await RequestBaseURL.$current.withValue(base) { try await next(request, context) }
    }
}
