/// An image index (OCI image-spec `image-index.md`) or Docker manifest list: one manifest per platform,
/// plus, from BuildKit, attestation manifests with platform `unknown/unknown`.
public struct ImageIndex: Sendable, Hashable, Codable {
    /// Always 2.
    public var schemaVersion: Int
    public var mediaType: String?
    public var manifests: [Descriptor]
    public var annotations: [String: String]?

    public init(schemaVersion: Int = 2, mediaType: String?, manifests: [Descriptor], annotations: [String: String]? = nil) {
        self.schemaVersion = schemaVersion
        self.mediaType = mediaType
        self.manifests = manifests
        self.annotations = annotations
    }

    /// True for an entry that is not a runnable image: BuildKit attestations (`unknown/unknown`, or
    /// annotated `vnd.docker.reference.type: attestation-manifest`).
    static func isAttestation(_ descriptor: Descriptor) -> Bool {
        if descriptor.annotations?["vnd.docker.reference.type"] == "attestation-manifest" { return true }
        if let platform = descriptor.platform, platform.os == "unknown" || platform.architecture == "unknown" {
            return true
        }
        return false
    }

    /// The entry for `platform`: the first image manifest whose platform satisfies the request,
    /// preferring one whose variant matches exactly. Attestation entries are never chosen.
    /// - Throws: `RegistryError.platformNotFound` listing the platforms the index offers.
    public func manifest(for platform: Platform) throws -> Descriptor {
        let candidates = manifests.filter {
            !Self.isAttestation($0) && $0.platform.map(platform.isSatisfied(by:)) == true
        }
        if let exact = candidates.first(where: { $0.platform?.variant == platform.variant }) { return exact }
        if let first = candidates.first { return first }
        let available = manifests.filter { !Self.isAttestation($0) }.compactMap(\.platform)
        throw RegistryError.platformNotFound(requested: platform, available: available)
    }
}
