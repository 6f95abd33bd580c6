import GantryModel

/// An image manifest, OCI (image-spec `manifest.md`) or Docker schema 2, which share this shape.
public struct ImageManifest: Sendable, Hashable, Codable {
    /// Always 2.
    public var schemaVersion: Int
    /// The manifest's media type when the body states it (Docker always does; OCI should).
    public var mediaType: String?
    /// The image configuration blob.
    public var config: Descriptor
    /// The layers, base layer first.
    public var layers: [Descriptor]
    public var annotations: [String: String]?
    /// The artifact type (image-spec v1.1); nil for images.
    public var artifactType: String?
    /// The manifest this one refers to (image-spec v1.1 referrers); nil for images.
    public var subject: Descriptor?

    public init(schemaVersion: Int = 2, mediaType: String?, config: Descriptor, layers: [Descriptor],
                annotations: [String: String]? = nil, artifactType: String? = nil, subject: Descriptor? = nil) {
        self.schemaVersion = schemaVersion
        self.mediaType = mediaType
        self.config = config
        self.layers = layers
        self.annotations = annotations
        self.artifactType = artifactType
        self.subject = subject
    }
}
