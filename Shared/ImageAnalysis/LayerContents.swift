import Foundation
/// What `LayerReader` keeps of one layer: the entries at paths of interest and every whiteout.
///
/// Shapes follow the OCI image spec, "Image Layer Filesystem Changeset", section "Representing
/// Changes": a layer adds or replaces entries, removes lower paths with whiteout files
/// (`.wh.NAME`) and hides a whole lower directory with an opaque marker (`.wh..wh..opq`).
public struct LayerContents: Sendable, Hashable, Codable {
    /// The kind and, for read files, the bytes of one recorded entry.
    public enum Kind: Sendable, Hashable, Codable {
        /// A regular file whose full contents were read.
        case file([UInt8])
        /// A regular file that was recorded without reading it (a marker path, or a non-directory
        /// at an ancestor of a path of interest); `size` is its declared size in bytes.
        case unreadFile(size: Int64)
        /// A symbolic link with its target exactly as stored (may be relative or absolute).
        case symlink(target: String)
        /// A hard link to `target` (normalised), whose data was not in this layer; resolved by
        /// `MergedFilesystem.apply` against the lower layers.
        case hardlink(target: String)
        /// A directory.
        case directory
        /// A device, FIFO or socket.
        case other
        /// A regular file that `FileExtractor`s read while streaming: only their summaries are kept,
        /// keyed by extractor name (never empty; a selected file with no summary is `.unreadFile`).
        case extracted(summaries: [String: [UInt8]])
    }

    /// One recorded entry; `path` is normalised (no leading `/` or `./`, no `..`).
    public struct Entry: Sendable, Hashable, Codable {
        public var path: String
        public var kind: Kind

        public init(path: String, kind: Kind) {
            self.path = path
            self.kind = kind
        }
    }

    /// Entries at paths of interest (and their ancestors), in archive order; a later entry for the
    /// same path replaces an earlier one when applied.
    public var entries: [Entry]
    /// Every path a whiteout file removes (`dir/.wh.NAME` gives `dir/NAME`), in archive order.
    public var whiteouts: [String]
    /// Every directory an opaque marker (`dir/.wh..wh..opq`) makes opaque; `""` is the root.
    public var opaqueDirectories: [String]
    /// The number of tar entries (headers) in the layer.
    public var entryCount: Int
    /// The uncompressed size of the tar stream as far as it was read, in bytes.
    public var uncompressedBytes: Int64
    /// What was skipped and why (unreadable names, AUFS metadata), for the scan report.
    public var notes: [String]

    public init(entries: [Entry] = [], whiteouts: [String] = [], opaqueDirectories: [String] = [],
                entryCount: Int = 0, uncompressedBytes: Int64 = 0, notes: [String] = []) {
        self.entries = entries
        self.whiteouts = whiteouts
        self.opaqueDirectories = opaqueDirectories
        self.entryCount = entryCount
        self.uncompressedBytes = uncompressedBytes
        self.notes = notes
    }
}

extension LayerContents {
    /// The version of what `LayerReader` keeps from a layer: part of every cache key, so a cached
    /// result is never reused by a reader that keeps more (bump it whenever catalogers or their
    /// files of interest change).
    public static let analyzerVersion = "gantry-layer-3"

    /// A compact binary encoding (binary property list) for caching a layer's analysis.
    public func encoded() throws -> Data {
        let encoder = PropertyListEncoder()
        encoder.outputFormat = .binary
        return try encoder.encode(self)
    }

    /// Decodes what `encoded()` produced.
    /// - Throws: when the data is not such an encoding.
    public static func decoded(from data: Data) throws -> LayerContents {
        try PropertyListDecoder().decode(LayerContents.self, from: data)
    }
}
