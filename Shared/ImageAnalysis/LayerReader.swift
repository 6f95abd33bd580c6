import Foundation
import GantryModel

/// Reads one layer blob into the `LayerContents` the catalogers need, streaming it through
/// libarchive from memory or from a file in 1 MiB blocks; nothing is ever written to disk.
///
/// The blob is the layer exactly as fetched from the registry: gzip, zstd or uncompressed tar
/// (OCI image spec, "Image Layer Filesystem Changeset"). The compression is detected from the bytes
/// by libarchive's filter auto-detection, so a wrong media type does no harm.
///
/// Kept: the contents of `FilesOfInterest.contentPaths` (and files under `contentDirectories`),
/// the presence of `markerPaths`, entries at their ancestor paths (so symlinks such as `lib ->
/// usr/lib` and replaced directories are seen), and every whiteout and opaque marker (OCI image
/// spec, "Representing Changes", "Whiteouts"). Regular files selected by one of
/// `FilesOfInterest.extractors` are read one at a time and only their summaries kept (see
/// `FileExtractor`). Everything else is skipped while streaming.
///
/// Names are normalised (leading `./` and `/` stripped); a name or hard-link target with a `..`
/// component fails the layer with `LayerReadError.unsafePath`. A hard link at a path of interest
/// whose target is in the same layer is resolved to the target's bytes (a second streaming pass
/// when the target was not itself of interest); one whose target is in a lower layer is left to
/// `MergedFilesystem.apply`.
public struct LayerReader: Sendable {
    /// The bounds applied to every layer.
    public var limits: AnalysisLimits
    /// The paths kept.
    public var interest: FilesOfInterest

    /// - Parameters:
    ///   - limits: size and count bounds (defaults: 64 MiB per file, 1 000 000 entries, 8 GiB).
    ///   - interest: what to keep; defaults to what `Cataloger` reads.
    public init(limits: AnalysisLimits = .init(), interest: FilesOfInterest = Cataloger.filesOfInterest) {
        self.limits = limits
        self.interest = interest
    }

    /// Reads one layer.
    /// - Parameter blob: the layer bytes (`[UInt8]`, `Data`, `ArraySlice<UInt8>` …); read in place.
    /// - Returns: the entries of interest, whiteouts and opaque markers, in archive order.
    /// - Throws: `LayerReadError` — `.notATar` (empty or unrecognised bytes), `.corrupt`
    ///   (truncated or damaged stream), `.unsafePath`, `.fileTooLarge`, `.tooManyEntries`,
    ///   `.tooManyBytes`.
    public func read(_ blob: some ContiguousBytes) throws(LayerReadError) -> LayerContents {
        let result = blob.withUnsafeBytes { buffer in
            Result { () throws(LayerReadError) -> LayerContents in try read(buffer: buffer) }
        }
        return try result.get()
    }

    /// Reads one layer from a file (a downloaded blob), streaming it in blocks: memory stays bounded by
    /// what is kept, whatever the layer's size. Same result and errors as `read(_:)`.
    public func read(fileAt url: URL) throws(LayerReadError) -> LayerContents {
        let path = url.path
        return try read { () throws(LayerReadError) in try ArchiveStream(path: path) }
    }

    /// Reads one layer from a file like `read(fileAt:)` and, in the same decompression pass, computes its
    /// diff ID: the sha256 of the whole uncompressed tar stream (OCI image spec, "Image Configuration",
    /// `rootfs.diff_ids`; Docker `docker load` checks the same). Hashing costs about a fifth of the
    /// decompression time; use it where nothing else vouches for the bytes (a `docker save` archive
    /// names its layer files, but not by their digests).
    /// - Returns: the contents and the diff ID.
    /// - Throws: as `read(_:)`; a stream that breaks after the last tar entry is `.corrupt`.
    public func readComputingDiffID(fileAt url: URL) throws(LayerReadError) -> (contents: LayerContents, diffID: Digest) {
        let path = url.path
        var first: ArchiveStream?
        let contents = try read { () throws(LayerReadError) in
            // The first stream hashes; the hard-link pass, if any, re-reads without hashing.
            if first == nil {
                let stream = try ArchiveStream(hashingUncompressed: path)
                first = stream
                return stream
            }
            return try ArchiveStream(path: path)
        }
        guard let digest = try first?.uncompressedDigest() else { throw .libarchive("the layer stream was never opened") }
        return (contents, digest)
    }

    private func read(buffer: UnsafeRawBufferPointer) throws(LayerReadError) -> LayerContents {
        try read { () throws(LayerReadError) in try ArchiveStream(buffer) }
    }

    /// One pass (two when hard links need their targets' bytes) over the archive `open` opens.
    private func read(_ open: () throws(LayerReadError) -> ArchiveStream) throws(LayerReadError) -> LayerContents {
        let stream = try open()
        var contents = LayerContents()
        // Hard links of interest whose target bytes are still needed: entry index -> target.
        var unresolvedLinks: [Int: String] = [:]

        while let header = try stream.next() {
            contents.entryCount = stream.headersRead
            guard stream.headersRead <= limits.maxEntries else { throw .tooManyEntries(limit: limits.maxEntries) }
            // Check both what was consumed and what this entry declares, so a huge declared size
            // is refused before libarchive spends time decompressing it.
            let consumed = stream.uncompressedBytes
            guard consumed <= limits.maxUncompressedBytes,
                  header.size <= limits.maxUncompressedBytes - consumed
            else { throw .tooManyBytes(limit: limits.maxUncompressedBytes) }

            guard let rawPath = header.rawPath else {
                contents.notes.append("entry \(stream.headersRead) has a name that is not valid UTF-8; skipped")
                continue
            }
            let path: String
            switch ArchivePath.normalise(rawPath) {
            case .root: continue
            case .unsafe: throw .unsafePath(rawPath)
            case .path(let normalised): path = normalised
            }
            if try recordWhiteout(path, into: &contents) { continue }
            if header.fileType == ArchiveStream.regularFile || header.hardlinkTarget != nil, !interest.extractors.isEmpty,
               !interest.wantsContent(path) {
                let extractors = interest.extractors(selecting: path, permissions: header.permissions)
                if !extractors.isEmpty {
                    let kind = try extractedKind(path: path, header: header, extractors: extractors, stream: stream,
                                                 contents: &contents)
                    contents.entries.append(.init(path: path, kind: kind))
                    continue
                }
            }
            guard interest.isRelevant(path) else { continue }

            if let rawTarget = header.hardlinkTarget {
                guard case .path(let target) = ArchivePath.normalise(rawTarget) else { throw .unsafePath(rawTarget) }
                if interest.wantsContent(path), let bytes = lastFile(at: target, in: contents.entries) {
                    contents.entries.append(.init(path: path, kind: .file(bytes)))
                } else {
                    if interest.wantsContent(path) { unresolvedLinks[contents.entries.count] = target }
                    contents.entries.append(.init(path: path, kind: .hardlink(target: target)))
                }
                continue
            }
            let kind: LayerContents.Kind
            switch header.fileType {
            case ArchiveStream.regularFile:
                if interest.wantsContent(path) {
                    guard header.size <= Int64(limits.maxFileBytes) else {
                        throw .fileTooLarge(path: path, size: header.size, limit: limits.maxFileBytes)
                    }
                    kind = .file(try stream.readData(path: path, declaredSize: header.size, limit: limits.maxFileBytes))
                } else {
                    kind = .unreadFile(size: header.size)
                }
            case ArchiveStream.symbolicLink:
                kind = .symlink(target: header.symlinkTarget ?? "")
            case ArchiveStream.directory:
                kind = .directory
            default:
                kind = .other
            }
            contents.entries.append(.init(path: path, kind: kind))
        }
        contents.uncompressedBytes = stream.uncompressedBytes
        if !unresolvedLinks.isEmpty {
            try resolveHardLinks(unresolvedLinks, open: open, contents: &contents)
        }
        return contents
    }

    /// Runs `extractors` over the regular file (or hard link) at `path`: `.extracted` with every summary
    /// found, else `.unreadFile`. A file over an extractor's size cap, or an extractor's own complaints,
    /// become notes; only a broken layer stream throws.
    private func extractedKind(path: String, header: ArchiveStream.Header, extractors: [FileExtractor],
                               stream: ArchiveStream, contents: inout LayerContents) throws(LayerReadError)
        -> LayerContents.Kind {
        if let rawTarget = header.hardlinkTarget {
            guard case .path(let target) = ArchivePath.normalise(rawTarget) else { throw .unsafePath(rawTarget) }
            // Tar stores the data once, at the first name; a later name in the same layer shares its summary.
            // A target in a lower layer is resolved by `MergedFilesystem.apply`.
            switch contents.entries.last(where: { $0.path == target })?.kind {
            case .some(let kind) where kind.isRegularFile: return kind
            default: return .hardlink(target: target)
            }
        }
        let prefixLength = extractors.map(\.selection.signatureLength).max() ?? 0
        var candidates = extractors
        guard let bytes = try stream.readData(
            path: path, declaredSize: header.size, limit: extractors.map(\.selection.maxBytes).max() ?? 0,
            prefixLength: prefixLength,
            accept: { prefix in
                candidates = candidates.filter { $0.selection.accepts(prefix: prefix) }
                // Past this point the whole file is read: refuse it when it is too large for every candidate.
                let fitting = candidates.filter { header.size <= Int64($0.selection.maxBytes) }
                for tooLarge in candidates where header.size > Int64(tooLarge.selection.maxBytes) {
                    contents.notes.append("\(path): \(header.size) bytes exceeds the \(tooLarge.name) limit of "
                        + "\(ByteCount.describe(Int64(tooLarge.selection.maxBytes))); not read")
                }
                candidates = fitting
                return !candidates.isEmpty
            })
        else { return .unreadFile(size: header.size) }
        var summaries: [String: [UInt8]] = [:]
        for extractor in candidates {
            let output = extractor.extract(path, bytes)
            contents.notes += output.notes.map { "\(path): \($0)" }
            if let summary = output.summary { summaries[extractor.name] = summary }
        }
        return summaries.isEmpty ? .unreadFile(size: header.size) : .extracted(summaries: summaries)
    }

    /// Records `.wh.NAME` and `.wh..wh..opq`; returns true when `path` was a whiteout of any kind.
    private func recordWhiteout(_ path: String, into contents: inout LayerContents) throws(LayerReadError) -> Bool {
        let (parent, name) = ArchivePath.split(path)
        guard name.hasPrefix(".wh.") else { return false }
        if name == ".wh..wh..opq" {
            contents.opaqueDirectories.append(parent)
        } else if name.hasPrefix(".wh..wh.") {
            // AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs): reserved by the spec, not a deletion.
            contents.notes.append("AUFS metadata entry \(path) ignored")
        } else {
            let removed = String(name.dropFirst(4))
            guard !removed.isEmpty, removed != ".", removed != ".." else {
                throw .unsafePath(path)
            }
            contents.whiteouts.append(ArchivePath.join(parent, removed))
        }
        return true
    }

    private func lastFile(at path: String, in entries: [LayerContents.Entry]) -> [UInt8]? {
        guard let entry = entries.last(where: { $0.path == path }), case .file(let bytes) = entry.kind else {
            return nil
        }
        return bytes
    }

    /// Second pass over the same bytes for hard-link targets that were not themselves of interest.
    private func resolveHardLinks(_ links: [Int: String], open: () throws(LayerReadError) -> ArchiveStream,
                                  contents: inout LayerContents) throws(LayerReadError) {
        let wanted = Set(links.values)
        var found: [String: [UInt8]] = [:]
        let stream = try open()
        while let header = try stream.next() {
            guard let rawPath = header.rawPath, case .path(let path) = ArchivePath.normalise(rawPath),
                  wanted.contains(path), header.fileType == ArchiveStream.regularFile, header.hardlinkTarget == nil
            else { continue }
            guard header.size <= Int64(limits.maxFileBytes) else {
                throw .fileTooLarge(path: path, size: header.size, limit: limits.maxFileBytes)
            }
            found[path] = try stream.readData(path: path, declaredSize: header.size, limit: limits.maxFileBytes)
        }
        for (index, target) in links {
            if let bytes = found[target] { contents.entries[index].kind = .file(bytes) }
        }
    }
}

private extension LayerContents.Kind {
    /// A regular file in any recorded form.
    var isRegularFile: Bool {
        switch self {
        case .file, .unreadFile, .extracted: true
        default: false
        }
    }
}
