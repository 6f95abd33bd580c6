import Foundation
import GantryRuntime
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// The common middleware stack, in the order `ServiceRuntime.makeApplication` installs it, on a real router.
@Suite struct MiddlewareTests {
    static let key = "middleware-test-service-key-0123456789"
    static let maxBytes = 1024

    struct Secret: Error, CustomStringConvertible {
        var description: String { "connection to postgres://admin:hunter2@db failed" }
    }

    static func application() async -> some ApplicationProtocol {
        let tokens = await ServiceTokens(key: key, issuer: "test-service")
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: RequestTraceMiddleware())
        router.add(middleware: ProblemMiddleware())
        router.add(middleware: BodyLimitMiddleware(maxBytes: maxBytes))
        router.add(middleware: ServiceAuthMiddleware(tokens: tokens, audience: "test-service"))
        router.get("/missing") { _, _ -> String in throw ProblemError.notFound("widget 42 does not exist") }
        router.get("/conflict") { _, _ -> String in throw ProblemError.conflict("widget 42 is busy") }
        router.get("/boom") { _, _ -> String in throw Secret() }
        router.get("/http-error") { _, _ -> String in throw HTTPError(.forbidden, message: "not yours") }
        router.get("/internal/x") { _, _ in "internal ok" }
        router.get("/public") { _, _ in "public ok" }
        router.post("/upload") { request, _ -> String in
            let body = try await request.body.collect(upTo: .max)
            return "\(body.readableBytes)"
        }
        router.get("/trace") { _, _ -> String in
            guard let trace = RequestTrace.current else { return "none" }
            return "\(trace.requestID) \(trace.traceparent)"
        }
        return Application(router: router)
    }

    struct Problem: Decodable {
        var type: String
        var title: String
        var status: Int
        var detail: String
        var instance: String?
    }

    static func problem(_ response: TestResponse) throws -> Problem {
        try JSONDecoder().decode(Problem.self, from: Data(response.body.readableBytesView))
    }

    @Test("fresh request IDs are random version 4 UUIDs (RFC 9562, section 5.4), lowercase, never repeated")
    func freshRequestIDs() {
        var seen = Set<String>()
        for _ in 0..<10_000 {
            let id = RequestTrace.fresh().requestID
            let uuid = UUID(uuidString: id)
            #expect(uuid != nil && id == id.lowercased(), "\(id)")
            let bytes = uuid.map { withUnsafeBytes(of: $0.uuid) { Array($0) } } ?? []
            #expect(bytes.count == 16 && bytes[6] >> 4 == 4 && bytes[8] >> 6 == 0b10, "\(id)")
            seen.insert(id)
        }
        #expect(seen.count == 10_000)
    }

    @Test func problemErrorBecomesProblemJSON() async throws {
        try await Self.application().test(.router) { client in
            let response = try await client.execute(uri: "/missing", method: .get)
            #expect(response.status == .notFound)
            #expect(response.headers[.contentType] == "application/problem+json")
            let problem = try Self.problem(response)
            #expect(problem.status == 404)
            #expect(problem.title == "Not Found")
            #expect(problem.detail == "widget 42 does not exist")
            #expect(problem.instance == "/missing")
            #expect(problem.type == "about:blank")
            // The problem response still carries the request ID.
            #expect(response.headers[RequestTrace.requestIDField]?.isEmpty == false)

            let conflict = try await client.execute(uri: "/conflict", method: .get)
            #expect(conflict.status == .conflict)
            #expect(try Self.problem(conflict).detail == "widget 42 is busy")

            let forbidden = try await client.execute(uri: "/http-error", method: .get)
            #expect(forbidden.status == .forbidden)
            #expect(forbidden.headers[.contentType] == "application/problem+json")
            #expect(try Self.problem(forbidden).detail == "not yours")
        }
    }

    @Test func arbitraryErrorIs500WithoutInternals() async throws {
        try await Self.application().test(.router) { client in
            let response = try await client.execute(uri: "/boom", method: .get)
            #expect(response.status == .internalServerError)
            #expect(response.headers[.contentType] == "application/problem+json")
            let text = String(buffer: response.body)
            #expect(!text.contains("hunter2"))
            #expect(!text.contains("postgres"))
            #expect(!text.contains("Secret"))
            #expect(try Self.problem(response).status == 500)
        }
    }

    @Test func unknownRouteIs404Problem() async throws {
        try await Self.application().test(.router) { client in
            let response = try await client.execute(uri: "/nowhere", method: .get)
            #expect(response.status == .notFound)
            #expect(response.headers[.contentType] == "application/problem+json")
        }
    }

    @Test func internalRoutesNeedAServiceToken() async throws {
        let caller = await ServiceTokens(key: Self.key, issuer: "scanner")
        let valid = try await caller.token(for: "test-service")
        let otherAudience = try await caller.token(for: "billing")
        let forged = try await ServiceTokens(key: String(repeating: "z", count: 40), issuer: "scanner").token(for: "test-service")
        try await Self.application().test(.router) { client in
            let anonymous = try await client.execute(uri: "/internal/x", method: .get)
            #expect(anonymous.status == .unauthorized)
            #expect(anonymous.headers[.contentType] == "application/problem+json")
            #expect(String(buffer: anonymous.body).contains("service token"))
            #expect(anonymous.headers[.wwwAuthenticate] == #"Bearer realm="gantry-internal""#)  // RFC 6750 §3

            let ok = try await client.execute(uri: "/internal/x", method: .get, headers: [.authorization: "Bearer \(valid)"])
            #expect(ok.status == .ok)
            #expect(String(buffer: ok.body) == "internal ok")

            for header in ["Bearer \(otherAudience)", "Bearer \(forged)", "Basic \(valid)", "Bearer ", valid] {
                let refused = try await client.execute(uri: "/internal/x", method: .get, headers: [.authorization: header])
                #expect(refused.status == .unauthorized, "\(header.prefix(20))")
                #expect(refused.headers[.wwwAuthenticate]?.hasPrefix(#"Bearer realm="gantry-internal""#) == true)
                #expect(refused.headers[.contentType] == "application/problem+json")
            }
            // Other spellings of the same internal path must not slip past the check.
            for path in ["//internal/x", "/internal//x", "/internal/x/", "/./internal/x", "/%69nternal/x"] {
                let response = try await client.execute(uri: path, method: .get)
                #expect(response.status != .ok, "\(path) reached the internal route without a token")
            }
            // Public routes need no token; a path merely starting like one is public.
            #expect(try await client.execute(uri: "/internalx", method: .get).status == .notFound)
            let open = try await client.execute(uri: "/public", method: .get)
            #expect(open.status == .ok)
        }
    }

    @Test func internalPathSpellingsNeedATokenOverTheWire() async throws {
        try await Self.application().test(.live) { client in
            for path in ["/internal/x", "//internal/x", "///internal//x"] {
                let response = try await client.execute(uri: path, method: .get)
                #expect(response.status == .unauthorized, "\(path)")
            }
        }
    }

    @Test func bodyLimit() async throws {
        try await Self.application().test(.router) { client in
            let small = try await client.execute(uri: "/upload", method: .post,
                                                 body: ByteBuffer(repeating: 1, count: Self.maxBytes))
            #expect(small.status == .ok)
            #expect(String(buffer: small.body) == "\(Self.maxBytes)")

            let large = try await client.execute(uri: "/upload", method: .post,
                                                 body: ByteBuffer(repeating: 1, count: Self.maxBytes + 1))
            #expect(large.status == .contentTooLarge)
            #expect(large.headers[.contentType] == "application/problem+json")
            #expect(try Self.problem(large).detail.contains("\(Self.maxBytes)"))
        }
    }

    @Test func bodyLimitWithoutContentLength() async throws {
        // A streamed (chunked) body announces no length; the limit must still hold.
        try await Self.application().test(.live) { client in
            var headers: HTTPFields = [:]
            headers[.transferEncoding] = "chunked"
            let large = try await client.execute(uri: "/upload", method: .post, headers: headers,
                                                 body: ByteBuffer(repeating: 1, count: Self.maxBytes * 4))
            #expect(large.status == .contentTooLarge)
        }
    }

    @Test func requestIDIsEchoedWhenWellFormed() async throws {
        let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        try await Self.application().test(.router) { client in
            let response = try await client.execute(uri: "/trace", method: .get, headers: [
                RequestTrace.requestIDField: "req-123_abc.DEF", RequestTrace.traceparentField: traceparent])
            #expect(response.headers[RequestTrace.requestIDField] == "req-123_abc.DEF")
            #expect(String(buffer: response.body) == "req-123_abc.DEF \(traceparent)")
        }
    }

    @Test(arguments: ["has spaces", "<script>", "ünïcode", String(repeating: "a", count: 129), "semi;colon"])
    func garbageRequestIDIsReplaced(_ garbage: String) async throws {
        try await Self.application().test(.router) { client in
            let response = try await client.execute(uri: "/trace", method: .get, headers: [
                RequestTrace.requestIDField: garbage, RequestTrace.traceparentField: "00-zz-yy-01"])
            let echoed = try #require(response.headers[RequestTrace.requestIDField])
            #expect(echoed != garbage)
            #expect(UUID(uuidString: echoed) != nil)
            let parts = String(buffer: response.body).split(separator: " ")
            #expect(parts.first.map(String.init) == echoed)
            #expect(parts.last?.split(separator: "-").map(\.count) == [2, 32, 16, 2])
        }
    }

    @Test func freshRequestIDWhenAbsent() async throws {
        try await Self.application().test(.router) { client in
            let first = try await client.execute(uri: "/trace", method: .get)
            let second = try await client.execute(uri: "/trace", method: .get)
            let a = try #require(first.headers[RequestTrace.requestIDField])
            let b = try #require(second.headers[RequestTrace.requestIDField])
            #expect(a != b)
            #expect(UUID(uuidString: a) != nil)
        }
    }

    @Test func childTraceKeepsTraceID() {
        let trace = RequestTrace.fresh()
        let child = trace.child()
        #expect(child.requestID == trace.requestID)
        let parent = trace.traceparent.split(separator: "-")
        let derived = child.traceparent.split(separator: "-")
        #expect(derived[1] == parent[1])
        #expect(derived[2] != parent[2])
    }
}
