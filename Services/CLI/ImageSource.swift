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
struct ImageSource {
    var name: String
    var digest: Digest?
    var os: String?
    /// The layer blobs in order, as stored (compressed or not).
    var layers: [Data]
    /// What the source itself said about the image (missing or inconsistent parts).
    var notes: [String] = []

    /// - Throws: `CLIError` saying what is wrong with the reference or the image.
    static func load(_ reference: String, platform: String, insecure: Bool) async throws -> ImageSource {
        var reference = reference
        // A bare path to an existing file or directory is an archive or a layout, never a registry reference.
        var isDirectory: ObjCBool = false
        if !reference.contains(":") || reference.hasPrefix("/") || reference.hasPrefix("."),
           FileManager.default.fileExists(atPath: reference, isDirectory: &isDirectory) {
            reference = isDirectory.boolValue ? "oci-dir:\(reference)" : try archiveTransport(reference) + reference
        }
        let parts = platform.split(separator: "/").map(String.init)
        guard parts.count >= 2 else { throw CLIError("--platform must be os/architecture[/variant], for example linux/amd64") }
        if reference.hasPrefix("oci-archive:") {
            let path = String(reference.dropFirst("oci-archive:".count))
            let archive = try openArchive(path)
            return try fromOCILayout(name: path, files: { archive.files[$0] }, os: parts[0], architecture: parts[1])
        }
        if reference.hasPrefix("oci-dir:") || reference.hasPrefix("oci:") {
            let path = String(reference.drop(while: { $0 != ":" }).dropFirst())
            let root = URL(fileURLWithPath: path)
            return try fromOCILayout(name: path, files: { try? [UInt8](Data(contentsOf: root.appendingPathComponent($0), options: .alwaysMapped)) },
                                     os: parts[0], architecture: parts[1])
        }
        if reference.hasPrefix("docker-archive:") {
            let path = String(reference.dropFirst("docker-archive:".count))
            return try fromDockerArchive(path: path, archive: try openArchive(path))
        }
        return try await fromRegistry(reference, platform: Platform(os: parts[0], architecture: parts[1],
                                                                     variant: parts.count > 2 ? parts[2] : nil),
                                      insecure: insecure)
    }

    private static func openArchive(_ path: String) throws -> OCIArchive {
        guard FileManager.default.isReadableFile(atPath: path) else { throw CLIError("\(path): no such readable file") }
        do {
            return try OCIArchive(try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped))
        } catch {
            throw CLIError("\(path): \(error)")
        }
    }

    /// `docker-archive:` when the tar has a `manifest.json`, else `oci-archive:`.
    private static func archiveTransport(_ path: String) throws -> String {
        let archive = try openArchive(path)
        return archive.files["manifest.json"] != nil ? "docker-archive:" : "oci-archive:"
    }

    /// An OCI image layout (image-spec `image-layout.md`): `index.json` → manifest (or nested index) → layers.
    private static func fromOCILayout(name: String, files: (String) -> [UInt8]?, os: String,
                                      architecture: String) throws -> ImageSource {
        guard let indexBytes = files("index.json") else { throw CLIError("\(name): no index.json (not an OCI image layout)") }
        var descriptor = try pick(from: indexBytes, os: os, architecture: architecture, name: name)
        for _ in 0..<4 {
            guard let bytes = files("blobs/\(descriptor.digest.algorithm)/\(descriptor.digest.encoded)") else {
                throw CLIError("\(name): blob \(descriptor.digest) is missing")
            }
            let object = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] ?? [:]
            if object["manifests"] != nil {
                descriptor = try pick(from: bytes, os: os, architecture: architecture, name: name)
                continue
            }
            let config = (object["config"] as? [String: Any]).flatMap { $0["digest"] as? String }
                .flatMap { try? Digest(parsing: $0) }
                .flatMap { files("blobs/\($0.algorithm)/\($0.encoded)") }
                .flatMap { try? JSONSerialization.jsonObject(with: Data($0)) as? [String: Any] }
            var layers: [Data] = []
            for layer in object["layers"] as? [[String: Any]] ?? [] {
                guard let digest = (layer["digest"] as? String).flatMap({ try? Digest(parsing: $0) }) else {
                    throw CLIError("\(name): a layer has no valid digest")
                }
                guard let blob = files("blobs/\(digest.algorithm)/\(digest.encoded)") else {
                    throw CLIError("\(name): layer \(digest) is missing")
                }
                guard Checksum.sha256Hex(blob) == digest.encoded else {
                    throw CLIError("\(name): layer \(digest) does not match its digest")
                }
                layers.append(Data(blob))
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
    private static func fromDockerArchive(path: String, archive: OCIArchive) throws -> ImageSource {
        guard let manifestBytes = archive.files["manifest.json"] else {
            throw CLIError("\(path): no manifest.json (not a docker-archive)")
        }
        guard let manifests = (try? JSONSerialization.jsonObject(with: Data(manifestBytes), options: .fragmentsAllowed))
                as? [[String: Any]],
              let manifest = manifests.first
        else { throw CLIError("\(path): manifest.json does not list any image (expected a JSON array of image entries)") }
        let config = (manifest["Config"] as? String).flatMap { archive.files[$0] }
            .flatMap { try? JSONSerialization.jsonObject(with: Data($0)) as? [String: Any] }
        var layers: [Data] = []
        for layer in manifest["Layers"] as? [String] ?? [] {
            guard let bytes = archive.files[layer] else { throw CLIError("\(path): layer \(layer) is missing") }
            layers.append(Data(bytes))
        }
        let name = (manifest["RepoTags"] as? [String])?.first ?? path
        var notes: [String] = []
        let diffIDs = ((config?["rootfs"] as? [String: Any])?["diff_ids"] as? [Any])?.count
        if let diffIDs, diffIDs != layers.count {
            // A trimmed or damaged archive: report what the layers present hold, and say it is partial.
            notes.append("\(path): manifest.json lists \(layers.count) layers but the image config lists \(diffIDs); the inventory is partial")
        }
        if manifests.count > 1 {
            notes.append("\(path) holds \(manifests.count) images; only the first (\(name)) was analysed")
        }
        return ImageSource(name: name, digest: nil, os: config?["os"] as? String, layers: layers, notes: notes)
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
            var layers: [Data] = []
            for layer in image.manifest.layers {
                layers.append(Data(try await client.blob(endpoint, repository: repository, descriptor: layer)))
            }
            try await http.shutdown()
            return ImageSource(name: "\(host)/\(repository):\(tag)", digest: image.requestedDigest, os: config.os, layers: layers)
        } catch {
            try? await http.shutdown()
            throw error
        }
    }

    /// Analyses the layers with the scanner's own reader, merge rules and catalogers.
    func inventory() throws -> ImageInventory {
        if os?.lowercased() == "windows" {
            return ImageInventory(operatingSystem: nil, packages: [], notApplicable: .windowsImage,
                                  notes: ["Windows images are not supported"])
        }
        var filesystem = MergedFilesystem()
        let reader = LayerReader()
        for layer in layers { filesystem.apply(try reader.read(layer)) }
        var inventory = Cataloger.inventory(of: filesystem)
        inventory.notes = notes + inventory.notes
        return inventory
    }
}
