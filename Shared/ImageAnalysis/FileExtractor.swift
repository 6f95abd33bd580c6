/// Reads a small summary out of files too large or too numerous to keep whole (every executable in an
/// image, large jars) while `LayerReader` streams a layer.
///
/// The reader holds one selected file in memory (at most `Selection.maxBytes`), runs `extract` on it and
/// keeps only the summary, as `LayerContents.Kind.extracted` at the file's path; the bytes are dropped at
/// once. Because the summary sits at the file's path, whiteouts and later layers override it like any file.
/// A selected file that yields no summary is recorded as `.unreadFile`, so that it still replaces a lower
/// layer's summary at the same path.
///
/// Extractors travel in `FilesOfInterest.extractors`; a cataloger declares its own in `interest` and reads
/// the results back with `MergedFilesystem.extracted(by:)`.
public struct FileExtractor: Sendable, Hashable {
    /// Which regular files an extractor reads.
    public struct Selection: Sendable, Hashable {
        /// Name endings that select a file, compared case-insensitively (`.jar`, `.war`).
        public var suffixes: Set<String>
        /// Also select every regular file with an execute bit (owner, group or other).
        public var executables: Bool
        /// Leading bytes one of which the file must start with (`\u{7F}ELF`, `MZ`); empty accepts any.
        /// Checked on the first bytes read, so a non-matching file is skipped without reading it whole.
        public var signatures: [[UInt8]]
        /// The largest file read, in bytes; a larger file gets a note and no summary.
        public var maxBytes: Int

        public init(suffixes: Set<String> = [], executables: Bool = false, signatures: [[UInt8]] = [],
                    maxBytes: Int) {
            self.suffixes = suffixes
            self.executables = executables
            self.signatures = signatures
            self.maxBytes = maxBytes
        }

        /// True when a regular file at `path` with permission bits `permissions` is selected.
        func selects(_ path: String, permissions: UInt32) -> Bool {
            if executables, permissions & 0o111 != 0 { return true }
            return suffixes.contains { Self.hasSuffixIgnoringCase(path, $0) }
        }

        /// True when `prefix` (the first bytes of the file) starts with one of `signatures`.
        func accepts(prefix: ArraySlice<UInt8>) -> Bool {
            signatures.isEmpty || signatures.contains { prefix.starts(with: $0) }
        }

        /// The longest signature, in bytes: how much must be read before `accepts` can answer.
        var signatureLength: Int { signatures.map(\.count).max() ?? 0 }

        private static func hasSuffixIgnoringCase(_ path: String, _ suffix: String) -> Bool {
            let tail = path.utf8.suffix(suffix.utf8.count)
            guard tail.count == suffix.utf8.count else { return false }
            return zip(tail, suffix.utf8).allSatisfy { lower($0) == lower($1) }
        }

        private static func lower(_ byte: UInt8) -> UInt8 {
            (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte + 32 : byte
        }
    }

    /// What `extract` found in one file.
    public struct Output: Sendable, Hashable {
        /// The summary kept in `LayerContents`; nil when the file holds nothing for this extractor.
        public var summary: [UInt8]?
        /// Problems worth reporting (a damaged section, a bounded partial result); the layer reader
        /// prefixes each with the file's path.
        public var notes: [String]

        public init(summary: [UInt8]?, notes: [String] = []) {
            self.summary = summary
            self.notes = notes
        }

        /// Nothing found, nothing to say: the common case for an unrelated file.
        public static let none = Output(summary: nil)
    }

    /// Identifies the extractor; summaries are stored and looked up under it (`go-buildinfo`).
    public let name: String
    public let selection: Selection
    /// Reads the summary from a selected file's whole contents. Must not crash on any input.
    public let extract: @Sendable (_ path: String, _ bytes: [UInt8]) -> Output

    public init(name: String, selection: Selection,
                extract: @escaping @Sendable (_ path: String, _ bytes: [UInt8]) -> Output) {
        self.name = name
        self.selection = selection
        self.extract = extract
    }

    // Two extractors are the same when they have the same name and selection; `FilesOfInterest` keeps
    // one per name.
    public static func == (lhs: FileExtractor, rhs: FileExtractor) -> Bool {
        lhs.name == rhs.name && lhs.selection == rhs.selection
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        hasher.combine(selection)
    }
}
