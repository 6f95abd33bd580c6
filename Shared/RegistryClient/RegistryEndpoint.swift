import Foundation

/// Credentials for one registry: sent as HTTP Basic authentication (RFC 7617) when the registry
/// challenges with `WWW-Authenticate: Basic`, and to the token endpoint when it challenges with
/// `Bearer` (Distribution "Token Authentication Specification", "Requesting a Token").
public struct RegistryCredentials: Sendable, Hashable {
    public var username: String
    public var password: String

    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }

    /// The `Authorization` header value `Basic base64(username:password)`.
    var basicAuthorization: String {
        "Basic " + Data("\(username):\(password)".utf8).base64EncodedString()
    }
}

/// One registry to talk to: its base URL (scheme, host and port, no `/v2` suffix, for example
/// `http://127.0.0.1:5000` or `https://registry-1.docker.io`) and the credentials to use, if any.
public struct RegistryEndpoint: Sendable {
    /// The registry's base URL; API paths (`/v2/…`) are appended to it.
    public var baseURL: URL
    public var credentials: RegistryCredentials?

    public init(baseURL: URL, credentials: RegistryCredentials?) {
        self.baseURL = baseURL
        self.credentials = credentials
    }

    /// The base URL as a string without a trailing slash.
    var base: String {
        var string = baseURL.absoluteString
        while string.hasSuffix("/") { string.removeLast() }
        return string
    }

    /// `scheme://host:port`, the key under which authorization is cached.
    var origin: String { Self.origin(of: baseURL) }

    static func origin(of url: URL) -> String {
        let scheme = url.scheme?.lowercased() ?? ""
        let host = url.host?.lowercased() ?? ""
        let port = url.port ?? (scheme == "https" ? 443 : 80)
        return "\(scheme)://\(host):\(port)"
    }
}
