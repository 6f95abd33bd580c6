import GantryModel

/// A content descriptor (OCI image spec, `descriptor.md`): what a manifest or index says about
/// a blob or manifest it points to.
public struct Descriptor: Sendable, Hashable, Codable {
    /// The referenced content's media type.
    public var mediaType: String
    /// The digest of the referenced content's bytes.
    public var digest: Digest
    /// The referenced content's size in bytes.
    public var size: Int64
    /// Alternate download URLs (used by Windows foreign and non-distributable layers); nil when absent.
    public var urls: [String]?
    /// Arbitrary annotations; nil when absent.
    public var annotations: [String: String]?
    /// The platform, present on index entries (image-spec `image-index.md`).
    public var platform: Platform?
    /// The artifact type (image-spec v1.1), when the content is an artifact.
    public var artifactType: String?

    public init(mediaType: String, digest: Digest, size: Int64, urls: [String]? = nil,
                annotations: [String: String]? = nil, platform: Platform? = nil, artifactType: String? = nil) {
        self.mediaType = mediaType
        self.digest = digest
        self.size = size
        self.urls = urls
        self.annotations = annotations
        self.platform = platform
        self.artifactType = artifactType
    }
}
