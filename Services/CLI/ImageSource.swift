import AsyncHTTPClient
import Foundation
import GantryModel
import GantryRuntime
import ImageAnalysis
import Logging
import RegistryClient

/// An image to analyse offline or straight from a registry, in the transports skopeo names:
/// `oci-archive:FILE`, `docker-archive:FILE` (`docker save`), `oci-dir:DIR` (an OCI image layout), or a
/// registry reference `HOST/REPO[:TAG|@DIGEST]` (`docker://` prefix optional).
///
/// Layers are never held in memory: archives are unpacked once into a private scratch directory
/// (`OCIArchive`), registry blobs are downloaded into one, and an OCI layout's blobs are read where
/// they are. Each layer is then streamed from its file by `LayerReader`. The scratch files are removed
/// when the source goes away.
struct ImageSource {
    /// One layer file, bottom first.
    struct Layer {
        /// The blob as stored (compressed or not).
        var file: URL
        /// What to call it in notes: its digest or its path in the archive.
        var label: String
        /// The diff ID the image config lists for it, still to be checked while reading (docker-archive
        /// layers whose stored bytes are not themselves the uncompressed tar); nil when nothing is left to check.
        var unverifiedDiffID: Digest?
    }

    var name: String
    var digest: Digest?
    var os: String?
    var layers: [Layer]
    /// What the source itself said about the image (missing or inconsistent parts).
    var notes: [String] = []
    /// The unpacked archive or the downloads the layer files live in, kept until the source goes away.
    var archive: OCIArchive?
    var scratch: ScratchDirectory?

    /// - Throws: `CLIError` saying what is wrong with the reference or the image.
    static func load(_ reference: String, platform: String, insecure: Bool) async throws -> ImageSource {
        var reference = reference
        // A bare path to an existing file or directory is an archive or a layout, never a registry reference.
        var isDirectory: ObjCBool = false
        var unpacked: OCIArchive?
        if !reference.contains(":") || reference.hasPrefix("/") || reference.hasPrefix("."),
           FileManager.default.fileExists(atPath: reference, isDirectory: &isDirectory) {
            if isDirectory.boolValue {
                reference = "oci-dir:\(reference)"
            } else {
                // `docker-archive:` when the tar has a `manifest.json`, else `oci-archive:`.
                let archive = try openArchive(reference)
                reference = (archive.members["manifest.json"] != nil ? "docker-archive:" : "oci-archive:") + reference
                unpacked = archive
            }
        }
        let parts = platform.split(separator: "/").map(String.init)
        guard parts.count >= 2 else { throw CLIError("--platform must be os/architecture[/variant], for example linux/amd64") }
        if reference.hasPrefix("oci-archive:") {
            let path = String(reference.dropFirst("oci-archive:".count))
            let archive = try unpacked ?? openArchive(path)
            var source = try fromOCILayout(
                name: path, os: parts[0], architecture: parts[1],
                read: { path in try archive.contents(of: path, limit: maxDocumentBytes) },
                blobFile: { digest in
                    do { return try archive.blobFile(digest) } catch OCIArchive.Error.missing { return nil }
                })
            source.archive = archive
            return source
        }
        if reference.hasPrefix("oci-dir:") || reference.hasPrefix("oci:") {
            let path = String(reference.drop(while: { $0 != ":" }).dropFirst())
            let root = URL(fileURLWithPath: path)
            return try fromOCILayout(
                name: path, os: parts[0], architecture: parts[1],
                read: { path in try readDocument(root.appendingPathComponent(path)) },
                blobFile: { digest in
                    let file = root.appendingPathComponent(OCIArchive.blobPath(digest))
                    guard FileManager.default.isReadableFile(atPath: file.path) else { return nil }
                    let actual = try BlobHasher.digest(ofFileAt: file, algorithm: digest.algorithm)
                    guard actual == digest else { throw OCIArchive.Error.digestMismatch(expected: digest, actual: actual) }
                    return file
                })
        }
        if reference.hasPrefix("docker-archive:") {
            let path = String(reference.dropFirst("docker-archive:".count))
            return try fromDockerArchive(path: path, archive: try unpacked ?? openArchive(path))
        }
        return try await fromRegistry(reference, platform: Platform(os: parts[0], architecture: parts[1],
                                                                     variant: parts.count > 2 ? parts[2] : nil),
                                      insecure: insecure)
    }

    /// The largest manifest, index or config read (RegistryLimits' manifest bound).
    static let maxDocumentBytes = 4 << 20

    /// Unpacks an archive into a scratch directory, reading it once.
    private static func openArchive(_ path: String) throws -> OCIArchive {
        guard FileManager.default.isReadableFile(atPath: path) else { throw CLIError("\(path): no such readable file") }
        do {
            return try OCIArchive(fileAt: URL(fileURLWithPath: path))
        } catch {
            throw CLIError("\(path): \(error)")
        }
    }

    /// A small file of an OCI layout directory, or nil when there is none.
    private static func readDocument(_ file: URL) throws -> [UInt8]? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: file.path) else { return nil }
        let size = (attributes[.size] as? NSNumber)?.int64Value ?? 0
        guard size <= Int64(maxDocumentBytes) else {
            throw CLIError("\(file.path) is \(size) bytes; image documents are read up to \(maxDocumentBytes) bytes")
        }
        return [UInt8](try Data(contentsOf: file))
    }

    /// An OCI image layout (image-spec `image-layout.md`): `index.json` → manifest (or nested index) → layers.
    /// - Parameters:
    ///   - read: a small file by layout path, nil when absent.
    ///   - blobFile: the file of a blob checked against its digest, nil when absent.
    private static func fromOCILayout(name: String, os: String, architecture: String,
                                      read: (String) throws -> [UInt8]?,
                                      blobFile: (Digest) throws -> URL?) throws -> ImageSource {
        func file(_ path: String) throws -> [UInt8]? {
            do { return try read(path) } catch let error as OCIArchive.Error { throw CLIError("\(name): \(error)") }
        }
        func document(_ digest: Digest) throws -> [UInt8] {
            guard let bytes = try file(OCIArchive.blobPath(digest)) else { throw CLIError("\(name): blob \(digest) is missing") }
            return bytes
        }
        guard let indexBytes = try file("index.json") else { throw CLIError("\(name): no index.json (not an OCI image layout)") }
        var descriptor = try pick(from: indexBytes, os: os, architecture: architecture, name: name)
        for _ in 0..<4 {
            let bytes = try document(descriptor.digest)
            let object = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] ?? [:]
            if object["manifests"] != nil {
                descriptor = try pick(from: bytes, os: os, architecture: architecture, name: name)
                continue
            }
            let config = try (object["config"] as? [String: Any]).flatMap { $0["digest"] as? String }
                .flatMap { try? Digest(parsing: $0) }
                .map(document)
                .flatMap { try? JSONSerialization.jsonObject(with: Data($0)) as? [String: Any] }
            var layers: [Layer] = []
            for layer in object["layers"] as? [[String: Any]] ?? [] {
                guard let digest = (layer["digest"] as? String).flatMap({ try? Digest(parsing: $0) }) else {
                    throw CLIError("\(name): a layer has no valid digest")
                }
                let file: URL?
                do { file = try blobFile(digest) } catch OCIArchive.Error.digestMismatch(_, let actual) {
                    throw CLIError("\(name): layer \(digest) does not match its digest (its bytes hash to \(actual))")
                }
                guard let file else { throw CLIError("\(name): layer \(digest) is missing") }
                layers.append(Layer(file: file, label: digest.description))
            }
            return ImageSource(name: name, digest: descriptor.digest, os: config?["os"] as? String, layers: layers)
        }
        throw CLIError("\(name): image indexes nested too deeply")
    }

    private struct Picked { var digest: Digest }

    private static func pick(from indexBytes: [UInt8], os: String, architecture: String, name: String) throws -> Picked {
        let index = try JSONSerialization.jsonObject(with: Data(indexBytes)) as? [String: Any] ?? [:]
        let manifests = index["manifests"] as? [[String: Any]] ?? []
        let chosen = manifests.first { entry in
            guard let platform = entry["platform"] as? [String: Any] else { return false }
            return platform["os"] as? String == os && platform["architecture"] as? String == architecture
        } ?? (manifests.count == 1 ? manifests.first : nil)
        guard let chosen, let digest = (chosen["digest"] as? String).flatMap({ try? Digest(parsing: $0) }) else {
            throw CLIError("\(name): no \(os)/\(architecture) image in the index")
        }
        return Picked(digest: digest)
    }

    /// `docker save` output: `manifest.json` lists the config and the layer paths inside the archive.
    ///
    /// The layer files are named, not content-addressed, so their bytes are checked against the config's
    /// `rootfs.diff_ids` (what `docker load` checks): for free when a layer is stored uncompressed (its
    /// unpacking hash is its diff ID), else while it is read (`LayerReader.readComputingDiffID`). A
    /// mismatch, like a layer count that differs from the diff IDs', is a note: the archive was altered
    /// after it was saved, and the inventory describes the bytes present.
    private static func fromDockerArchive(path: String, archive: OCIArchive) throws -> ImageSource {
        let manifestBytes: [UInt8]
        do {
            guard let bytes = try archive.contents(of: "manifest.json", limit: maxDocumentBytes, checkingName: false) else {
                throw CLIError("\(path): no manifest.json (not a docker-archive)")
            }
            manifestBytes = bytes
        } catch let error as OCIArchive.Error {
            throw CLIError("\(path): \(error)")
        }
        guard let manifests = (try? JSONSerialization.jsonObject(with: Data(manifestBytes), options: .fragmentsAllowed))
                as? [[String: Any]],
              let manifest = manifests.first
        else { throw CLIError("\(path): manifest.json does not list any image (expected a JSON array of image entries)") }
        let config = (manifest["Config"] as? String)
            .flatMap { try? archive.contents(of: $0, limit: maxDocumentBytes, checkingName: false) }
            .flatMap { try? JSONSerialization.jsonObject(with: Data($0)) as? [String: Any] }
        let diffIDs = ((config?["rootfs"] as? [String: Any])?["diff_ids"] as? [Any])?.map { ($0 as? String).flatMap { try? Digest(parsing: $0) } }
        let layerPaths = manifest["Layers"] as? [String] ?? []
        var notes: [String] = []
        if let diffIDs, diffIDs.count != layerPaths.count {
            // A trimmed or damaged archive: report what the layers present hold, and say it is partial.
            notes.append("\(path): manifest.json lists \(layerPaths.count) layers but the image config lists \(diffIDs.count); the inventory is partial")
        }
        var layers: [Layer] = []
        for (position, layerPath) in layerPaths.enumerated() {
            guard let member = archive.members[layerPath] else { throw CLIError("\(path): layer \(layerPath) is missing") }
            if let named = member.namedDigest, named != member.digest {
                notes.append("\(path): layer \(layerPath) does not match the digest its name gives (its bytes hash to \(member.digest))")
            }
            // Diff IDs pair with layers by position only when the counts agree.
            let expected = diffIDs?.count == layerPaths.count ? diffIDs?[position] : nil
            let unverified = expected.flatMap { $0 == member.digest || $0.algorithm != "sha256" ? nil : $0 }
            layers.append(Layer(file: member.file, label: layerPath, unverifiedDiffID: unverified))
        }
        let name = (manifest["RepoTags"] as? [String])?.first ?? path
        if manifests.count > 1 {
            notes.append("\(path) holds \(manifests.count) images; only the first (\(name)) was analysed")
        }
        return ImageSource(name: name, digest: nil, os: config?["os"] as? String, layers: layers, notes: notes,
                           archive: archive)
    }

    private static func fromRegistry(_ reference: String, platform: Platform, insecure: Bool) async throws -> ImageSource {
        var text = reference
        if text.hasPrefix("docker://") { text = String(text.dropFirst("docker://".count)) }
        guard let slash = text.firstIndex(of: "/") else { throw CLIError("'\(reference)' is not HOST/REPOSITORY[:TAG|@DIGEST]") }
        let host = String(text[..<slash])
        var repository = String(text[text.index(after: slash)...])
        var tag = "latest"
        if let at = repository.firstIndex(of: "@") {
            tag = String(repository[repository.index(after: at)...])
            repository = String(repository[..<at])
        } else if let colon = repository.lastIndex(of: ":") {
            tag = String(repository[repository.index(after: colon)...])
            repository = String(repository[..<colon])
        }
        let environment = ProcessInfo.processInfo.environment
        let credentials = environment["GANTRY_REGISTRY_USERNAME"].map {
            RegistryCredentials(username: $0, password: environment["GANTRY_REGISTRY_PASSWORD"] ?? "")
        }
        guard let baseURL = URL(string: "\(insecure ? "http" : "https")://\(host)") else {
            throw CLIError("'\(host)' is not a registry host")
        }
        let endpoint = RegistryEndpoint(baseURL: baseURL, credentials: credentials)
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(redirectConfiguration: .disallow))
        do {
            let client = RegistryClient(httpClient: http, logger: Logger(label: "gantry-scan"))
            let image = try await client.resolveImage(endpoint, repository: repository, reference: tag, platform: platform)
            let config = try await client.config(endpoint, image: image)
            // Layers go to disk, checked against their digests while downloading, and are streamed from there.
            let scratch = try ScratchDirectory(prefix: "gantry-pull-")
            var layers: [Layer] = []
            for (position, layer) in image.manifest.layers.enumerated() {
                let file = scratch.file("layer-\(position)")
                try await client.downloadBlob(endpoint, repository: repository, descriptor: layer, to: file)
                layers.append(Layer(file: file, label: layer.digest.description))
            }
            try await http.shutdown()
            return ImageSource(name: "\(host)/\(repository):\(tag)", digest: image.requestedDigest, os: config.os,
                               layers: layers, scratch: scratch)
        } catch {
            try? await http.shutdown()
            throw error
        }
    }

    /// Analyses the layers with the scanner's own reader, merge rules and catalogers, streaming each
    /// layer from its file (memory stays bounded by what the catalogers keep).
    func inventory() throws -> ImageInventory {
        if os?.lowercased() == "windows" {
            return ImageInventory(operatingSystem: nil, packages: [], notApplicable: .windowsImage,
                                  notes: ["Windows images are not supported"])
        }
        var filesystem = MergedFilesystem()
        var notes = notes
        let reader = LayerReader()
        for layer in layers {
            if let expected = layer.unverifiedDiffID {
                let (contents, diffID) = try reader.readComputingDiffID(fileAt: layer.file)
                if diffID != expected {
                    notes.append("\(name): layer \(layer.label) does not match the diff ID \(expected) in the image config "
                        + "(its uncompressed bytes hash to \(diffID)); the archive was altered after it was saved")
                }
                filesystem.apply(contents)
            } else {
                filesystem.apply(try reader.read(fileAt: layer.file))
            }
        }
        var inventory = Cataloger.inventory(of: filesystem)
        inventory.notes = notes + inventory.notes
        return inventory
    }
}
