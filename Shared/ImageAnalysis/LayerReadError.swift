/// Why a layer blob could not be read. Every case names what was wrong; none is ever a crash.
public enum LayerReadError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The blob is empty, or libarchive recognised neither a compression filter nor a tar header.
    case notATar(String)
    /// The blob started as a tar archive but broke off or became unreadable (truncated gzip, bad header).
    case corrupt(String, entriesRead: Int)
    /// An entry name or hard-link target has a `..` component, which could escape the image root.
    case unsafePath(String)
    /// A file of interest is larger than `AnalysisLimits.maxFileBytes`.
    case fileTooLarge(path: String, size: Int64, limit: Int)
    /// The layer has more entries than `AnalysisLimits.maxEntries`.
    case tooManyEntries(limit: Int)
    /// The layer decompresses to more than `AnalysisLimits.maxUncompressedBytes`.
    case tooManyBytes(limit: Int64)
    /// libarchive could not be set up (out of memory, missing format support).
    case libarchive(String)

    public var description: String {
        switch self {
        case .notATar(let detail):
            "layer is not a tar archive: \(detail)"
        case .corrupt(let detail, let entriesRead):
            "layer is corrupt after \(entriesRead) entries: \(detail)"
        case .unsafePath(let path):
            "layer entry '\(path.prefix(300))' has a '..' path component and could escape the image root"
        case .fileTooLarge(let path, let size, let limit):
            "file \(path) (\(size) bytes) exceeds the \(ByteCount.describe(Int64(limit))) limit for files of interest"
        case .tooManyEntries(let limit):
            "layer has more than \(limit) entries"
        case .tooManyBytes(let limit):
            "layer decompresses to more than \(ByteCount.describe(limit))"
        case .libarchive(let detail):
            "libarchive could not be set up: \(detail)"
        }
    }
}

/// Human-readable byte counts for error messages ("64 MiB", "1500 bytes").
enum ByteCount {
    static func describe(_ bytes: Int64) -> String {
        let units: [(Int64, String)] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
        for (size, name) in units where bytes >= size && bytes % size == 0 {
            return "\(bytes / size) \(name)"
        }
        return "\(bytes) bytes"
    }
}
