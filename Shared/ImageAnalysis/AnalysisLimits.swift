/// Bounds that keep the analysis of one layer finite whatever the layer claims about itself.
///
/// A layer is untrusted input (a registry serves whatever was pushed), so every quantity that
/// grows with the input is capped; exceeding a cap is a `LayerReadError`, never a partial result.
public struct AnalysisLimits: Sendable, Hashable {
    /// The largest file of interest (os-release, an apk database, …) read into memory, in bytes.
    /// Default 64 MiB. A file of interest above it fails the layer with `LayerReadError.fileTooLarge`.
    public var maxFileBytes: Int
    /// The most tar entries (headers) one layer may hold. Default 1 000 000.
    public var maxEntries: Int
    /// The most bytes one layer may decompress to (tar headers and data), in bytes. Default 8 GiB.
    public var maxUncompressedBytes: Int64

    /// - Parameters:
    ///   - maxFileBytes: bytes of one file of interest (default 64 MiB).
    ///   - maxEntries: entries per layer (default 1 000 000).
    ///   - maxUncompressedBytes: uncompressed bytes per layer (default 8 GiB).
    public init(maxFileBytes: Int = 64 * 1024 * 1024, maxEntries: Int = 1_000_000,
                maxUncompressedBytes: Int64 = 8 * 1024 * 1024 * 1024) {
        self.maxFileBytes = maxFileBytes
        self.maxEntries = maxEntries
        self.maxUncompressedBytes = maxUncompressedBytes
    }
}
