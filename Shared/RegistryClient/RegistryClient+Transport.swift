import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1

extension RegistryClient {
    /// GETs `url` and returns the 2xx response with its body unread.
    ///
    /// - Authorization: a cached value for the scope is sent first; a 401 from the registry's own
    ///   origin is answered once per request from its `WWW-Authenticate` challenge (Basic or Bearer,
    ///   see `authorize`). Credentials go only to the registry's origin, never to a redirect target
    ///   on another host (a blob store's presigned URL carries its own authorization).
    /// - Redirects (301, 302, 303, 307, 308) are followed up to `limits.maxRedirects`.
    /// - 429, 502, 503, 504 and connections closed or timing out mid-exchange are retried up to `limits.maxRetries` times with
    ///   doubling backoff, honouring `Retry-After` (RFC 9110 §10.2.3), capped at `limits.maxBackoff`. A retry
    ///   after a redirect asks the redirect target again (a blob store's pre-signed URL stays valid for minutes).
    ///   When the retries are used up, the error says how many were made.
    /// - SSRF guard: with `addressGuard` set, the start URL and every redirect target are checked before they are
    ///   requested; a refused one throws `AddressRefusal`.
    /// - Throws: `RegistryError.unauthorized`, `.notFound`, `.http`, `.transport`; `AddressRefusal`.
    func get(_ startURL: String, endpoint: RegistryEndpoint, scope: String, accept: [String],
             timeout: Duration) async throws -> HTTPClientResponse {
        let cacheKey = AuthorizationCache.key(origin: endpoint.origin, scope: scope,
                                              username: endpoint.credentials?.username)
        var authorization = await authorizations.value(for: cacheKey)
        var authorized = false
        var attempt = 0
        var redirects = 0
        var url = startURL
        while true {
            // SSRF guard: the start URL and every redirect hop (a registry may redirect to metadata endpoints).
            // With pinned clients the connection goes to exactly the address checked here (DNS rebinding).
            let client = try connection(for: url)
            var request = HTTPClientRequest(url: url)
            request.method = .GET
            if !accept.isEmpty { request.headers.add(name: "Accept", value: accept.joined(separator: ", ")) }
            let sameOrigin = URL(string: url).map(RegistryEndpoint.origin(of:)) == endpoint.origin
            if sameOrigin, let authorization { request.headers.add(name: "Authorization", value: authorization) }

            let response: HTTPClientResponse
            do {
                response = try await client.execute(request, timeout: Self.timeAmount(timeout), logger: logger)
            } catch let error as HTTPClientError
                        where [.remoteConnectionClosed, .readTimeout, .writeTimeout].contains(error) && attempt < limits.maxRetries {
                // The connection broke mid-exchange; a fresh one may succeed. Connect failures are not
                // retried here: AsyncHTTPClient already retries them until its connect timeout.
                let delay = backoff(attempt: attempt, retryAfter: nil)
                logger.info("registry connection failed, retrying",
                            metadata: ["url": "\(url)", "error": "\(error)", "delay": "\(delay)"])
                try await Task.sleep(for: delay)
                attempt += 1
                continue
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                let retries = attempt == 0 ? "" : " (after \(attempt) \(attempt == 1 ? "retry" : "retries"))"
                throw RegistryError.classifyTransport(url: url, error: error, suffix: retries)
            }

            let status = Int(response.status.code)
            switch status {
            case 200..<300:
                return response
            case 301, 302, 303, 307, 308:
                await discard(response)
                guard let location = response.headers.first(name: "Location"),
                      let next = URL(string: location, relativeTo: URL(string: url))?.absoluteURL,
                      next.scheme == "http" || next.scheme == "https"
                else { throw RegistryError.malformed("HTTP \(status) from \(url) without a usable Location header") }
                redirects += 1
                guard redirects <= limits.maxRedirects else {
                    throw RegistryError.http(status: status, url: startURL,
                                             bodyExcerpt: "more than \(limits.maxRedirects) redirects (RegistryLimits.maxRedirects)")
                }
                url = next.absoluteString
            case 401 where sameOrigin && !authorized:
                await discard(response)
                if authorization != nil { await authorizations.remove(cacheKey) }
                authorization = try await authorize(challenges: response.headers["WWW-Authenticate"],
                                                    endpoint: endpoint, scope: scope, url: url, cacheKey: cacheKey)
                authorized = true
            case 401, 403:
                let excerpt = await bodyExcerpt(response)
                throw RegistryError.unauthorized(
                    url: url,
                    detail: "HTTP \(status) " + (endpoint.credentials == nil ? "without credentials" : "with the configured credentials")
                        + (excerpt.isEmpty ? "" : ": \(excerpt)"))
            case 429 where attempt < limits.maxRetries, 502 where attempt < limits.maxRetries,
                 503 where attempt < limits.maxRetries, 504 where attempt < limits.maxRetries:
                await discard(response)
                let delay = backoff(attempt: attempt, retryAfter: response.headers.first(name: "Retry-After"))
                logger.info("registry busy, retrying",
                            metadata: ["url": "\(url)", "status": "\(status)", "delay": "\(delay)"])
                try await Task.sleep(for: delay)
                attempt += 1
            case 429, 502, 503, 504:
                // Still busy after every retry: say so, so that the caller can tell it from a plain failure.
                let excerpt = await bodyExcerpt(response)
                throw RegistryError.http(
                    status: status, url: url,
                    bodyExcerpt: "gave up after \(attempt) \(attempt == 1 ? "retry" : "retries") (RegistryLimits.maxRetries is \(limits.maxRetries))"
                        + (excerpt.isEmpty ? "" : "; last answer: \(excerpt)"))
            case 404:
                throw RegistryError.notFound(url: url, detail: await bodyExcerpt(response))
            default:
                throw RegistryError.http(status: status, url: url, bodyExcerpt: await bodyExcerpt(response))
            }
        }
    }

    /// Answers a 401 challenge and caches the result (Distribution "Token Authentication
    /// Specification"; RFC 7617 for Basic). Prefers Bearer when both are offered.
    /// - Returns: the `Authorization` header value to retry with.
    /// - Throws: `RegistryError.unauthorized` when credentials are needed and missing, or the token
    ///   service refuses them; `.malformed` for an unusable challenge or token response.
    func authorize(challenges headerValues: [String], endpoint: RegistryEndpoint, scope: String, url: String,
                   cacheKey: String) async throws -> String {
        let challenges = headerValues.flatMap(AuthChallenge.parse)
        if let bearer = challenges.first(where: { $0.scheme == "bearer" }) {
            let token = try await fetchToken(challenge: bearer, credentials: endpoint.credentials, scope: scope)
            let value = "Bearer \(token.value)"
            await authorizations.store(value, for: cacheKey, lifetime: token.lifetime)
            return value
        }
        if challenges.contains(where: { $0.scheme == "basic" }) {
            guard let credentials = endpoint.credentials else {
                throw RegistryError.unauthorized(
                    url: url, detail: "the registry requires Basic authentication and no credentials are configured")
            }
            let value = credentials.basicAuthorization
            await authorizations.store(value, for: cacheKey, lifetime: nil)
            return value
        }
        throw RegistryError.unauthorized(
            url: url,
            detail: "HTTP 401 with no Basic or Bearer challenge (WWW-Authenticate: \(headerValues.joined(separator: "; ").prefix(300)))")
    }

    /// The wait before retry `attempt` (0-based): `Retry-After` in seconds or as an HTTP-date when
    /// given, else `initialBackoff · 2^attempt`; never more than `maxBackoff`.
    func backoff(attempt: Int, retryAfter: String?) -> Duration {
        var delay = limits.initialBackoff * (1 << min(attempt, 16))
        if let retryAfter = retryAfter?.trimmingCharacters(in: .whitespaces) {
            if let seconds = Int(retryAfter), seconds >= 0 {
                delay = .seconds(seconds)
            } else if let date = Self.httpDateFormatter().date(from: retryAfter) {
                delay = .milliseconds(max(0, Int(date.timeIntervalSinceNow * 1000)))
            }
        }
        return min(delay, limits.maxBackoff)
    }

    /// Reads a whole body, refusing more than `limit` bytes.
    /// - Throws: `RegistryError.tooLarge` naming `what`.
    func readBody(_ response: HTTPClientResponse, limit: Int, what: String, limitName: String) async throws -> [UInt8] {
        if let length = response.headers.first(name: "Content-Length").flatMap(Int64.init), length > Int64(limit) {
            throw RegistryError.tooLarge(what: "\(what) (\(limitName))", actual: length, limit: Int64(limit), unit: "bytes")
        }
        var bytes: [UInt8] = []
        for try await buffer in response.body {
            guard bytes.count + buffer.readableBytes <= limit else {
                throw RegistryError.tooLarge(what: "\(what) (\(limitName))", actual: nil, limit: Int64(limit), unit: "bytes")
            }
            bytes.append(contentsOf: buffer.readableBytesView)
        }
        return bytes
    }

    /// The start of an error body, one line, for messages; the registry's `errors` array
    /// (distribution spec, "Error Codes") is summarised as `CODE: message`.
    func bodyExcerpt(_ response: HTTPClientResponse) async -> String {
        var bytes: [UInt8] = []
        do {
            for try await buffer in response.body where bytes.count < 4096 {
                bytes.append(contentsOf: buffer.readableBytesView.prefix(4096 - bytes.count))
            }
        } catch {
            // The excerpt is only for the message; a broken body leaves it shorter.
        }
        if let envelope = try? JSONDecoder().decode(ErrorEnvelope.self, from: Data(bytes)), !envelope.errors.isEmpty {
            return envelope.errors.map { "\($0.code ?? "UNKNOWN"): \($0.message ?? "")" }.joined(separator: "; ")
        }
        let text = String(decoding: bytes.prefix(300), as: UTF8.self)
        return text.split(whereSeparator: \.isNewline).joined(separator: " ").trimmingCharacters(in: .whitespaces)
    }

    /// Reads and drops a body so the connection can be reused.
    func discard(_ response: HTTPClientResponse) async {
        var seen = 0
        do {
            for try await buffer in response.body {
                seen += buffer.readableBytes
                // A huge body on a redirect or error is not worth reading; the connection is dropped instead.
                if seen > 1 << 20 { break }
            }
        } catch {
            // Nothing depends on the body being read.
        }
    }

    /// The distribution spec's error body: `{"errors":[{"code":…,"message":…,"detail":…}]}`.
    struct ErrorEnvelope: Decodable {
        struct Entry: Decodable {
            var code: String?
            var message: String?
        }
        var errors: [Entry]
    }

    static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        let limited = min(max(seconds, 0), Int64.max / 1_000_000_000 - 1)
        return .nanoseconds(limited * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    /// RFC 9110 §5.6.7 IMF-fixdate, for `Retry-After`.
    static func httpDateFormatter() -> DateFormatter {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return formatter
    }
}
