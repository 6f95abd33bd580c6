import AsyncHTTPClient
import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1
import GantryRuntime
import OpenAPIAsyncHTTPClient
import OpenAPIRuntime

/// How the CLI reaches the services: their URLs from `GANTRY_<SERVICE>_URL`; for internal routes, service
/// tokens signed with `GANTRY_SERVICE_KEY` (issuer `gantry-cli`); for public routes, the user token in
/// `GANTRY_TOKEN` or, when `GANTRY_DEV_TOKEN_KEY_FILE` names the development key, a development token it mints
/// (Platform Operator and Owner of the tenant in the path, docs/ROLES.md).
struct ServiceConnection: Sendable {
    let urls: [GantryServiceName: URL]
    let tokens: ServiceTokens
    var user: UserCredentials = .none

    /// `GANTRY_SERVICE_KEY` is needed only by commands that call internal routes (feed imports, the demo's set-up);
    /// without it the CLI still reaches every public route with the user's token, and an internal call is answered
    /// 401 by the service.
    /// - Throws: `ConfigurationError` when a URL or the development key is malformed, or the service key is too short.
    static func fromEnvironment() async throws -> ServiceConnection {
        var environment = ProcessInfo.processInfo.environment
        if (environment["GANTRY_SERVICE_KEY"] ?? "").isEmpty {
            // A throwaway key: tokens signed with it are refused by every service, so nothing internal is reachable.
            environment["GANTRY_SERVICE_KEY"] = (0..<4).map { _ in UUID().uuidString }.joined()
        }
        let configuration = try GantryConfiguration(service: .scanner, environment: environment)
        return ServiceConnection(urls: configuration.peerURLs,
                                 tokens: await ServiceTokens(key: configuration.serviceKey, issuer: "gantry-cli"),
                                 user: try await UserCredentials.fromEnvironment(configuration.environment))
    }

    func url(_ service: GantryServiceName) -> URL {
        urls[service] ?? URL(string: "http://127.0.0.1:\(service.defaultPort)")!
    }

    /// Transport and the token middleware for a generated client of `service`.
    func clientParts(_ service: GantryServiceName) -> (URL, any ClientTransport, [any ClientMiddleware]) {
        (url(service), AsyncHTTPClientTransport(configuration: .init(client: .shared, timeout: .seconds(60))),
         [PeerCallMiddleware(tokens: tokens, audience: service.rawValue), UserTokenMiddleware(user: user)])
    }

    /// Waits until every service answers `/readyz` with 200.
    /// - Throws: `CLIError` naming the services that are not ready after `timeout`.
    func waitUntilReady(timeout: Duration = .seconds(120)) async throws {
        let deadline = ContinuousClock.now + timeout
        var pending = Set(GantryServiceName.allCases)
        while !pending.isEmpty {
            for service in pending {
                var request = HTTPClientRequest(url: url(service).appendingPathComponent("readyz").absoluteString)
                request.method = .GET
                if let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(2)),
                   response.status.code == 200 {
                    pending.remove(service)
                }
            }
            if pending.isEmpty { break }
            guard ContinuousClock.now < deadline else {
                throw CLIError("not ready after \(timeout): \(pending.map(\.rawValue).sorted().joined(separator: ", "))")
            }
            try await Task.sleep(for: .milliseconds(250))
        }
    }
}

/// A CLI failure with a message for the operator.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }

    /// An answer the operation's contract does not list (401, 403, 404, 503 …): `"<what> answered HTTP <status>"`,
    /// followed by the problem's `detail` when the body is problem+json (RFC 9457), and for 401/403 a word on
    /// `GANTRY_TOKEN`, whose tenants and roles decide what the CLI may do.
    static func undocumented(_ what: String, status: Int, _ payload: UndocumentedPayload) async -> CLIError {
        struct Problem: Decodable { var detail: String? }
        var text = "\(what) answered HTTP \(status)"
        if let body = payload.body, let bytes = try? await [UInt8](collecting: body, upTo: 64 << 10),
           let detail = (try? JSONDecoder().decode(Problem.self, from: Data(bytes)))?.detail, !detail.isEmpty {
            text += ": \(detail)"
        }
        if ProcessInfo.processInfo.environment["GANTRY_TOKEN"] != nil {
            // The CLI sends GANTRY_TOKEN as it is: its tenant and roles decide, not --tenant.
            if status == 401 { text += " (check GANTRY_TOKEN: expired, or not issued for this deployment?)" }
            if status == 403 { text += " (GANTRY_TOKEN grants other tenants or roles: see `gantry token create --help`)" }
        }
        return CLIError(text)
    }
}

/// The user identity the CLI presents on public routes.
enum UserCredentials: Sendable {
    case none
    /// A token given in `GANTRY_TOKEN` (or `--token`).
    case token(String)
    /// Mint a development token per call (development profile only).
    case development(DevelopmentTokens)

    /// `GANTRY_TOKEN` wins; else the development key of `GANTRY_DEV_TOKEN_KEY_FILE`; else none (public routes answer 401).
    /// - Throws: `ConfigurationError` when the key file cannot be read or is not an ES256 key.
    static func fromEnvironment(_ environment: [String: String]) async throws -> UserCredentials {
        if let token = environment["GANTRY_TOKEN"], !token.isEmpty { return .token(token) }
        guard let file = environment["GANTRY_DEV_TOKEN_KEY_FILE"], !file.isEmpty else { return .none }
        do {
            return .development(try await DevelopmentTokens(pem: try String(contentsOfFile: file, encoding: .utf8)))
        } catch {
            throw ConfigurationError(variable: "GANTRY_DEV_TOKEN_KEY_FILE", message: "cannot use '\(file)': \(error)")
        }
    }
}

/// Puts the user token on every call to a public route (`PeerCallMiddleware` before it set the service token,
/// which only `/internal/` routes accept).
struct UserTokenMiddleware: ClientMiddleware {
    let user: UserCredentials

    func intercept(_ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String,
                   next: @Sendable (HTTPRequest, HTTPBody?, URL) async throws -> (HTTPResponse, HTTPBody?))
        async throws -> (HTTPResponse, HTTPBody?) {
        let path = String((request.path ?? "/").prefix { $0 != "?" })
        guard !AccessPolicy.isExempt(path: path) else { return try await next(request, body, baseURL) }
        var request = request
        switch user {
        case .none:
            request.headerFields[.authorization] = nil
        case .token(let token):
            request.headerFields[.authorization] = "Bearer \(token)"
        case .development(let signer):
            let segments = path.split(separator: "/")
            var tenants: [String: [TenantRole]] = [:]
            if let index = segments.firstIndex(of: "tenants"), index + 1 < segments.count {
                tenants[String(segments[index + 1])] = [.owner]
            }
            let token = try await signer.token(subject: "gantry-cli", tenantRoles: tenants,
                                               platformRoles: [.platformOperator], lifetime: 300)
            request.headerFields[.authorization] = "Bearer \(token)"
        }
        return try await next(request, body, baseURL)
    }
}
