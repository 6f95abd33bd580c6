import Crypto
import Foundation
import GantryModel
import GantryRuntime
import RegistryClient

/// An import's source image, from Docker's reference form `[host[:port]/]repository(:tag|@digest)`
/// (distribution's `reference` grammar): no host means Docker Hub (`docker.io`, served at
/// `registry-1.docker.io`), where a one-component name is under `library/`; no tag or digest means `latest`.
struct ImportSource: Sendable, Equatable {
    /// `host[:port]` as given, lowercased; `docker.io` for Docker Hub.
    var host: String
    var repository: String
    var tag: String?
    var digest: GantryModel.Digest?
    /// Where the registry API is served.
    var baseURL: URL

    /// The manifest reference to fetch: the digest when given, else the tag.
    var reference: String { digest?.description ?? tag ?? "latest" }

    /// `host/repository:tag` or `host/repository@digest`.
    var normalized: String { "\(host)/\(repository)" + (digest.map { "@\($0)" } ?? ":\(tag ?? "latest")") }

    /// - Parameter insecure: plain HTTP to the source (the caller allows it only in development).
    /// - Throws: `ProblemError` 400 naming what is malformed.
    static func parse(_ text: String, insecure: Bool) throws -> ImportSource {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty, trimmed.count <= 600, !trimmed.contains("://"),
              trimmed.unicodeScalars.allSatisfy({ (0x21...0x7E).contains($0.value) }) else {
            throw ProblemError.badRequest("source '\(trimmed.prefix(100))' is not an image reference ([host[:port]/]repository(:tag|@digest))")
        }
        var rest = Substring(trimmed)
        var digest: GantryModel.Digest?
        if let at = rest.firstIndex(of: "@") {
            do {
                digest = try GantryModel.Digest(parsing: String(rest[rest.index(after: at)...]))
            } catch {
                throw ProblemError.badRequest("source '\(trimmed.prefix(100))': '\(rest[rest.index(after: at)...].prefix(80))' is not a digest (sha256:<64 hex>)")
            }
            rest = rest[..<at]
        }
        var host = "docker.io"
        let components = rest.split(separator: "/", omittingEmptySubsequences: false)
        if components.count > 1, let first = components.first,
           first.contains(".") || first.contains(":") || first == "localhost" {
            host = first.lowercased()
            rest = rest[rest.index(after: rest.firstIndex(of: "/")!)...]
        }
        var tag: String?
        if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("/") {
            tag = String(rest[rest.index(after: colon)...])
            rest = rest[..<colon]
        }
        var repository = String(rest)
        if ["docker.io", "index.docker.io", "registry-1.docker.io"].contains(host) {
            host = "docker.io"
            if !repository.contains("/") { repository = "library/" + repository }
        }
        _ = try Validate.repository(repository, field: "source repository")
        if let tag { try Self.validateTag(tag, field: "source tag") }
        if digest == nil && tag == nil { tag = "latest" }
        let apiHost = host == "docker.io" ? "registry-1.docker.io" : host
        guard CloudProfile.host(ofLoginServer: apiHost) != nil,
              let baseURL = URL(string: "\(insecure ? "http" : "https")://\(apiHost)") else {
            throw ProblemError.badRequest("source host '\(host.prefix(100))' is not a host name with an optional port")
        }
        return ImportSource(host: host, repository: repository, tag: tag, digest: digest, baseURL: baseURL)
    }

    /// `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}` (distribution spec, "Pulling manifests").
    /// - Throws: `ProblemError` 400 naming `field`.
    static func validateTag(_ tag: String, field: String) throws {
        let bytes = Array(tag.utf8)
        func word(_ b: UInt8) -> Bool {
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == UInt8(ascii: "_")
        }
        guard let first = bytes.first, bytes.count <= 128, word(first),
              bytes.allSatisfy({ word($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }) else {
            throw ProblemError.badRequest("\(field) '\(tag.prefix(100))' is not a tag ([A-Za-z0-9_][A-Za-z0-9._-]{0,127})")
        }
    }
}

/// The SSRF guard for import source hosts (issue 6, "SSRF guard"): the host must parse, and every address it
/// resolves to must pass `AddressGuard.forDeployment` — no link-local (cloud metadata), unspecified, multicast
/// or reserved addresses, loopback only in development, private ranges only with
/// `GANTRY_ALLOW_PRIVATE_REGISTRIES=true`. Unlike registries, sources are not held to the cloud's registry
/// suffixes (Docker Hub is a source). A name that does not resolve yet is accepted here: the import's registry
/// client checks again before every request and redirect hop.
/// - Returns: why the host is refused, or nil when it may be contacted.
func importSourceRefusal(host: String, configuration: GantryConfiguration) -> String? {
    guard let name = CloudProfile.host(ofLoginServer: host) else { return "'\(host)' is not a host name with an optional port" }
    let addressGuard: AddressGuard
    do {
        addressGuard = try AddressGuard.forDeployment(configuration)
    } catch {
        return "\(error)"
    }
    do {
        try addressGuard.check(host: name, describing: host, allowUnresolved: true)
    } catch {
        return error.reason
    }
    return nil
}

/// Seals source credentials while an import job waits (transient: the format may change between releases) with GantryRuntime's `SecretSealer` under `GANTRY_SECRET_KEY`, in its text form, bound to `context`.
struct ImportCredentialSealer: Sendable {
    static let context = "ingestion.import.source-credentials"
    private let sealer: SecretSealer

    /// nil when the deployment has no secret key (imports then take no source credentials).
    init?(configuration: GantryConfiguration) {
        guard let sealer = try? SecretSealer(configuration: configuration) else { return nil }
        self.sealer = sealer
    }

    private struct Sealed: Codable {
        var username: String
        var password: String
    }

    func seal(_ credentials: RegistryCredentials) throws -> String {
        let json = try JSONEncoder().encode(Sealed(username: credentials.username, password: credentials.password))
        return try sealer.seal(String(decoding: json, as: UTF8.self), context: Self.context)
    }

    /// - Throws: when the value was not sealed with this key (tampered, or the key changed), or was never sealed.
    func open(_ stored: String) throws -> RegistryCredentials {
        guard !SecretSealer.needsSealing(stored) else {
            throw ProblemError.internal("the import's source credentials are not sealed")
        }
        let opened = try JSONDecoder().decode(Sealed.self, from: Data(try sealer.open(stored, context: Self.context).utf8))
        return RegistryCredentials(username: opened.username, password: opened.password)
    }
}
