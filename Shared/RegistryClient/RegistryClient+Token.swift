import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

extension RegistryClient {
    /// A bearer token and how long it may be reused.
    struct Token {
        var value: String
        var lifetime: Duration
    }

    /// The token endpoint's answer (Distribution "Token Authentication Specification",
    /// "Token Response Fields"): `token`, or its OAuth 2 alias `access_token`; `expires_in`
    /// seconds, 60 when absent.
    struct TokenResponse: Decodable {
        var token: String?
        var accessToken: String?
        var expiresIn: Int?

        enum CodingKeys: String, CodingKey {
            case token
            case accessToken = "access_token"
            case expiresIn = "expires_in"
        }
    }

    /// Requests a token: `GET realm?service=…&scope=…` with Basic credentials when configured
    /// ("Requesting a Token"). The scope is the challenge's when it names one, else `scope`.
    /// - Throws: `RegistryError.unauthorized` on 401/403 from the token service; `.malformed` for a
    ///   bad realm or a response without a token; `.http`/`.transport` otherwise.
    func fetchToken(challenge: AuthChallenge, credentials: RegistryCredentials?, scope: String) async throws -> Token {
        guard let realm = challenge.realm, var components = URLComponents(string: realm),
              components.scheme == "http" || components.scheme == "https", components.host != nil
        else {
            throw RegistryError.malformed("Bearer challenge without a usable http(s) realm: \(challenge.parameters)")
        }
        var items = components.queryItems ?? []
        if let service = challenge.service { items.append(URLQueryItem(name: "service", value: service)) }
        for part in (challenge.scope ?? scope).split(separator: " ") {
            items.append(URLQueryItem(name: "scope", value: String(part)))
        }
        components.queryItems = items
        guard let url = components.string else {
            throw RegistryError.malformed("cannot build a token request from realm \(realm)")
        }
        let client = try connection(for: url)
        var request = HTTPClientRequest(url: url)
        if let credentials { request.headers.add(name: "Authorization", value: credentials.basicAuthorization) }
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: Self.timeAmount(limits.requestTimeout), logger: logger)
        } catch {
            throw RegistryError.classifyTransport(url: url, error: error)
        }
        switch response.status.code {
        case 200:
            break
        case 401, 403:
            let excerpt = await bodyExcerpt(response)
            throw RegistryError.unauthorized(
                url: url,
                detail: "the token service refused " + (credentials == nil ? "an anonymous request" : "the configured credentials")
                    + (excerpt.isEmpty ? "" : ": \(excerpt)"))
        default:
            throw RegistryError.http(status: Int(response.status.code), url: url, bodyExcerpt: await bodyExcerpt(response))
        }
        let body = try await readBody(response, limit: limits.maxTokenResponseBytes, what: "token response from \(realm)",
                                      limitName: "RegistryLimits.maxTokenResponseBytes")
        let decoded: TokenResponse
        do {
            decoded = try JSONDecoder().decode(TokenResponse.self, from: Data(body))
        } catch {
            throw RegistryError.malformed("token response from \(realm) is not the expected JSON: \(error)")
        }
        guard let value = decoded.token ?? decoded.accessToken, !value.isEmpty else {
            throw RegistryError.malformed("token response from \(realm) has neither 'token' nor 'access_token'")
        }
        // Renew a little early so a token never expires between cache lookup and use.
        let seconds = max((decoded.expiresIn ?? 60) - 5, 1)
        return Token(value: value, lifetime: .seconds(seconds))
    }
}
