/// Which paths a `LayerReader` keeps from a layer; everything else is skipped while streaming.
///
/// Paths are relative to the image root, without a leading `/` or `./` (the normal form of
/// `ArchivePath`). Entries at ancestors of these paths (for example a `lib` symlink) are kept too,
/// so that `MergedFilesystem` can follow symlinks and notice a directory replaced by a file.
public struct FilesOfInterest: Sendable, Hashable {
    /// Files whose contents are read (up to `AnalysisLimits.maxFileBytes` each).
    public var contentPaths: Set<String>
    /// Directories every regular file under which is read, for example `var/lib/dpkg/status.d`.
    public var contentDirectories: Set<String>
    /// Files whose presence alone matters; their contents are never read (for example an rpm
    /// database, which may be far larger than the content limit).
    public var markerPaths: Set<String>
    /// Files kept wherever they are, by the end of their path (language metadata such as
    /// `.dist-info/METADATA` or `/package.json`); matched on whole path components when the suffix
    /// starts with `/`, else on the name's end.
    public var contentSuffixes: Set<String>
    /// Readers of summaries from files not kept whole (executables, jars); see `FileExtractor`. One per name.
    public var extractors: [FileExtractor]

    /// Every proper ancestor directory of the paths above, precomputed.
    let ancestors: Set<String>

    public init(contentPaths: Set<String>, contentDirectories: Set<String> = [], markerPaths: Set<String> = [],
                contentSuffixes: Set<String> = [], extractors: [FileExtractor] = []) {
        self.contentPaths = contentPaths
        self.contentDirectories = contentDirectories
        self.markerPaths = markerPaths
        self.contentSuffixes = contentSuffixes
        var seen: Set<String> = []
        self.extractors = extractors.filter { seen.insert($0.name).inserted }
        var ancestors: Set<String> = []
        for path in contentPaths.union(contentDirectories).union(markerPaths) {
            var components = path.split(separator: "/")
            while components.count > 1 {
                components.removeLast()
                ancestors.insert(components.joined(separator: "/"))
            }
        }
        self.ancestors = ancestors
    }

    /// True when the contents of `path` should be read.
    func wantsContent(_ path: String) -> Bool {
        contentPaths.contains(path) || contentDirectories.contains { path.hasPrefix($0 + "/") }
            || contentSuffixes.contains { path.hasSuffix($0) }
    }

    /// Everything either set keeps.
    public func union(_ other: FilesOfInterest) -> FilesOfInterest {
        FilesOfInterest(contentPaths: contentPaths.union(other.contentPaths),
                        contentDirectories: contentDirectories.union(other.contentDirectories),
                        markerPaths: markerPaths.union(other.markerPaths),
                        contentSuffixes: contentSuffixes.union(other.contentSuffixes),
                        extractors: extractors + other.extractors)
    }

    /// The extractors that select a regular file at `path` with permission bits `permissions`.
    func extractors(selecting path: String, permissions: UInt32) -> [FileExtractor] {
        extractors.filter { $0.selection.selects(path, permissions: permissions) }
    }

    /// True when an entry at `path` must be recorded in `LayerContents` at all.
    func isRelevant(_ path: String) -> Bool {
        wantsContent(path) || markerPaths.contains(path) || ancestors.contains(path)
            || contentDirectories.contains(path)
    }
}
