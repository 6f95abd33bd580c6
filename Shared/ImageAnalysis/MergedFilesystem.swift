/// The union view of an image's layers, restricted to the paths a `LayerReader` kept.
///
/// Layers are applied bottom to top as the OCI image spec, "Image Layer Filesystem Changeset",
/// "Applying Changesets" and "Whiteouts", describes:
/// - a whiteout `.wh.NAME` removes `NAME` and everything under it from the lower layers;
/// - an opaque marker `.wh..wh..opq` hides everything the lower layers have under its directory;
/// - whiteouts apply to lower layers only, so entries of the same layer survive them;
/// - a later entry replaces an earlier one at the same path; a non-directory replaces a whole
///   lower subtree; directories merge.
/// Hard links to lower-layer files take the target's contents at apply time. Symlinks are followed
/// when looking a file up, resolved lexically inside the image root (at most 40 links, as Linux's
/// `MAXSYMLINKS`).
public struct MergedFilesystem: Sendable, Hashable {
    /// Path (normalised) to the kind recorded there; directories are not stored.
    private var nodes: [String: LayerContents.Kind] = [:]
    /// How many layers were applied.
    public private(set) var layerCount = 0
    /// Notes from applying layers (hard links whose targets were missing).
    public private(set) var notes: [String] = []

    public init() {}

    /// Applies the next layer on top of those applied so far.
    public mutating func apply(_ layer: LayerContents) {
        layerCount += 1
        for directory in layer.opaqueDirectories {
            removeDescendants(of: directory)
        }
        for path in layer.whiteouts {
            nodes[path] = nil
            removeDescendants(of: path)
        }
        for entry in layer.entries {
            switch entry.kind {
            case .directory:
                // A directory merges with a lower directory but replaces a lower non-directory.
                nodes[entry.path] = nil
            case .hardlink(let target):
                let resolved = node(atResolved: target)
                replace(entry.path, with: nil)
                switch resolved {
                case .file, .unreadFile, .extracted: nodes[entry.path] = resolved
                default: notes.append("layer \(layerCount): hard link \(entry.path) -> \(target) has no file target; ignored")
                }
            default:
                replace(entry.path, with: entry.kind)
            }
        }
    }

    /// The contents of the regular file at `path` (symlinks followed), or nil where there is no
    /// such file in the merged view or its contents were not read.
    public func file(_ path: String) -> [UInt8]? {
        guard case .file(let bytes) = node(atResolved: path) else { return nil }
        return bytes
    }

    /// True when a regular file (read or not) exists at `path` (symlinks followed).
    public func fileExists(_ path: String) -> Bool {
        switch node(atResolved: path) {
        case .file, .unreadFile, .extracted: true
        default: false
        }
    }

    /// Every regular file that was read, under `directory` (not following symlinks), sorted by path.
    public func files(under directory: String) -> [(path: String, contents: [UInt8])] {
        let prefix = directory.isEmpty ? "" : directory + "/"
        return nodes.compactMap { path, kind in
            guard path.hasPrefix(prefix), case .file(let bytes) = kind else { return nil }
            return (path, bytes)
        }.sorted { $0.path < $1.path }
    }

    /// Every file kept whose path ends with `suffix`, sorted by path (language metadata wherever it lies).
    public func files(withSuffix suffix: String) -> [(path: String, contents: [UInt8])] {
        nodes.compactMap { path, kind in
            guard path.hasSuffix(suffix), case .file(let bytes) = kind else { return nil }
            return (path, bytes)
        }.sorted { $0.path < $1.path }
    }

    /// Every summary the `FileExtractor` named `name` kept, by file path (symlinks not followed), sorted
    /// by path. A file whiteout-deleted or replaced in a later layer is not listed.
    public func extracted(by name: String) -> [(path: String, summary: [UInt8])] {
        nodes.compactMap { path, kind in
            guard case .extracted(let summaries) = kind, let summary = summaries[name] else { return nil }
            return (path, summary)
        }.sorted { $0.path < $1.path }
    }

    private mutating func replace(_ path: String, with kind: LayerContents.Kind?) {
        nodes[path] = kind
        removeDescendants(of: path)
    }

    private mutating func removeDescendants(of directory: String) {
        if directory.isEmpty {
            nodes.removeAll()
            return
        }
        let prefix = directory + "/"
        for key in nodes.keys where key.hasPrefix(prefix) {
            nodes[key] = nil
        }
    }

    /// The node at `path` after following symlinks in every component.
    private func node(atResolved path: String) -> LayerContents.Kind? {
        guard case .path(let normalised) = ArchivePath.normalise(path) else {
            // `..` in a lookup path: resolve it lexically like a symlink target instead.
            let components = ArchivePath.resolveLink(target: "/" + path, parentComponents: [])
            return components.isEmpty ? nil : node(atResolved: components.joined(separator: "/"))
        }
        var pending = normalised.split(separator: "/").map(String.init)
        var resolved: [String] = []
        var hops = 0
        while !pending.isEmpty {
            let component = pending.removeFirst()
            let candidate = resolved + [component]
            if case .symlink(let target) = nodes[candidate.joined(separator: "/")] {
                hops += 1
                guard hops <= 40 else { return nil }
                pending = ArchivePath.resolveLink(target: target, parentComponents: resolved) + pending
                resolved = []
                continue
            }
            resolved = candidate
        }
        return resolved.isEmpty ? nil : nodes[resolved.joined(separator: "/")]
    }
}
