import GantryModel

/// A manifest or index exactly as the registry served it.
public struct FetchedManifest: Sendable, Hashable {
    /// The body, byte for byte; its digest is `digest`.
    public var bytes: [UInt8]
    /// The media type, from `Content-Type`, or from the body's `mediaType` when the registry sent a
    /// generic type; always one of `MediaType.isImageManifest` or `MediaType.isIndex`.
    public var mediaType: String
    /// The digest of `bytes` (the requested digest when the reference was one; else sha256).
    public var digest: Digest

    public init(bytes: [UInt8], mediaType: String, digest: Digest) {
        self.bytes = bytes
        self.mediaType = mediaType
        self.digest = digest
    }

    /// True when this is an index or manifest list.
    public var isIndex: Bool { MediaType.isIndex(mediaType) }
}
