import GantryModel

/// Everything that can go wrong talking to a registry; each description says what, where, and
/// which limit or rule was broken.
public enum RegistryError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The registry (or its token service) refused the credentials, or wanted some and none were
    /// configured. `url` is the request; `detail` the challenge or the registry's error text.
    case unauthorized(url: String, detail: String)
    /// 404: the repository, manifest or blob does not exist. `detail` carries the registry's
    /// error codes (distribution spec, "Error Codes": NAME_UNKNOWN, MANIFEST_UNKNOWN, BLOB_UNKNOWN).
    case notFound(url: String, detail: String)
    /// The content's digest is not the one asked for or announced.
    case digestMismatch(expected: Digest, actual: Digest)
    /// A manifest of a kind the client does not handle (Docker schema 1, an unknown media type,
    /// an artifact that is not an image); the string says which and why.
    case unsupportedMediaType(String)
    /// The index has no image manifest for the requested platform; `available` lists what it has
    /// (attestations excluded).
    case platformNotFound(requested: Platform, available: [Platform])
    /// Content beyond a `RegistryLimits` bound (or beyond its descriptor's size). `what` names the
    /// content and the limit, `actual` is the size seen when known, `unit` is `bytes` or `layers`.
    case tooLarge(what: String, actual: Int64?, limit: Int64, unit: String)
    /// An unexpected HTTP status, after any retries; `bodyExcerpt` is the start of the body.
    case http(status: Int, url: String, bodyExcerpt: String)
    /// A response that violates the spec (bad JSON, bad digest header, missing field …).
    case malformed(String)
    /// A repository name or reference that the distribution spec does not allow
    /// ("Pulling manifests": name and tag grammars).
    case invalidReference(String)
    /// The connection failed (refused, reset, timed out) after any retries.
    case transport(url: String, message: String)
    /// An `https` URL whose server answered the TLS handshake with something else, typically a registry served
    /// over plain HTTP. An import does not retry it (the scheme is wrong); the scanner and discovery treat the
    /// registry as unreachable, as for any TLS failure, and raise `registryUnreachable`.
    case notTLS(url: String)

    /// The error for a request to `url` that failed in transport: `notTLS` when the server does not speak TLS
    /// (BoringSSL's WRONG_VERSION_NUMBER: the first bytes back were not a TLS record), else `transport`.
    /// BoringSSL reports the reason only as text inside NIOSSL's error, hence the text match.
    static func classifyTransport(url: String, error: any Error, suffix: String = "") -> RegistryError {
        let message = String(describing: error)
        if url.lowercased().hasPrefix("https:"), message.contains("WRONG_VERSION_NUMBER") { return .notTLS(url: url) }
        return .transport(url: url, message: message + suffix)
    }

    public var description: String {
        switch self {
        case .unauthorized(let url, let detail):
            "registry refused access to \(url): \(detail)"
        case .notFound(let url, let detail):
            "not found: \(url)\(detail.isEmpty ? "" : " (\(detail))")"
        case .digestMismatch(let expected, let actual):
            "digest mismatch: expected \(expected), content hashes to \(actual)"
        case .unsupportedMediaType(let message):
            "unsupported media type: \(message)"
        case .platformNotFound(let requested, let available):
            "no image for platform \(requested) in the index; it offers: "
                + (available.isEmpty ? "no platforms" : available.map(\.description).joined(separator: ", "))
        case .tooLarge(let what, let actual, let limit, let unit):
            if let actual {
                "\(what) is too large: \(actual) \(unit), more than the limit of \(limit) \(unit)"
            } else {
                "\(what) is too large: more than the limit of \(limit) \(unit)"
            }
        case .http(let status, let url, let body):
            "registry answered HTTP \(status) for \(url)\(body.isEmpty ? "" : ": \(body)")"
        case .malformed(let message):
            "malformed registry response: \(message)"
        case .invalidReference(let message):
            "invalid reference: \(message)"
        case .transport(let url, let message):
            "could not reach \(url): \(message)"
        case .notTLS(let url):
            "the server of \(url) does not speak TLS: it answered the TLS handshake in plain text, as a registry served "
                + "over plain HTTP does. Reach such a registry over http://; for an import, pass --insecure to gantry import "
                + "(\"insecure\": true in the API)"
        }
    }
}
