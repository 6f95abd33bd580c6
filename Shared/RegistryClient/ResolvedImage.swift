import GantryModel

/// An image reference resolved to one platform's image manifest.
public struct ResolvedImage: Sendable, Hashable {
    /// The repository it was resolved in, for example `library/alpine`.
    public var repository: String
    /// The digest of what the reference named: the index when it named one, else the manifest.
    public var requestedDigest: Digest
    /// The media type of what the reference named.
    public var requestedMediaType: String
    /// The digest of the chosen image manifest (equal to `requestedDigest` when there was no index).
    public var manifestDigest: Digest
    /// The media type of the chosen image manifest (OCI or Docker schema 2).
    public var manifestMediaType: String
    /// The parsed image manifest: config and layer descriptors.
    public var manifest: ImageManifest
    /// The platform the index entry declared; nil when the reference named a manifest directly.
    public var platform: Platform?

    public init(repository: String, requestedDigest: Digest, requestedMediaType: String, manifestDigest: Digest,
                manifestMediaType: String, manifest: ImageManifest, platform: Platform?) {
        self.repository = repository
        self.requestedDigest = requestedDigest
        self.requestedMediaType = requestedMediaType
        self.manifestDigest = manifestDigest
        self.manifestMediaType = manifestMediaType
        self.manifest = manifest
        self.platform = platform
    }
}
