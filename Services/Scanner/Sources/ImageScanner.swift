import Foundation
import GantryModel
import ImageAnalysis
import Logging
import RegistryClient
import VulnerabilityDB

/// What one scan concluded.
enum ScanOutcome: Sendable {
    /// The image was analysed and matched; `findings` may be empty (healthy).
    case assessed(manifestDigest: Digest, inventory: ImageInventory, findings: [VulnerabilityFinding], namespace: String)
    /// The image cannot be assessed; never billed.
    case notApplicable(reason: NotApplicableReason, manifestDigest: Digest?, inventory: ImageInventory?, notes: [String])
}

/// Why a scan did not finish: `transient` failures are retried with backoff, `permanent` ones fail the job at once.
enum ScanFailure: Error, CustomStringConvertible {
    case transient(String)
    case permanent(String)
    /// The registry could not be reached (connection failed, or it answered 5xx after the client's own
    /// retries): retried like `transient`, and the registry is reported unreachable (`registryUnreachable`).
    case unreachable(String)

    var description: String {
        switch self {
        case .transient(let reason), .permanent(let reason), .unreachable(let reason): reason
        }
    }
}

/// Pulls an image through the Registry HTTP API v2 into memory (never executing or unpacking it to disk),
/// verifies every blob's digest, reads the layers in order through libarchive, catalogues the packages and
/// matches them against the knowledge base.
struct ImageScanner: Sendable {
    let registry: RegistryClient
    let knowledgeBase: PostgresKnowledgeBase
    let layerCache: PostgresLayerCache
    let layerReader: LayerReader
    let logger: Logger

    static let imageConfigMediaTypes: Set<String> = [
        "application/vnd.oci.image.config.v1+json",
        "application/vnd.docker.container.image.v1+json",
    ]

    func scan(endpoint: RegistryEndpoint, repository: String, digest: Digest) async throws(ScanFailure) -> ScanOutcome {
        do {
            let image: ResolvedImage
            do {
                image = try await registry.resolveImage(endpoint, repository: repository, reference: digest.description)
            } catch RegistryError.unsupportedMediaType(let detail) {
                return .notApplicable(reason: .unsupportedManifest, manifestDigest: nil, inventory: nil, notes: [detail])
            } catch RegistryError.platformNotFound(let requested, let available) {
                let windowsOnly = !available.isEmpty && available.allSatisfy { $0.os == "windows" }
                return .notApplicable(reason: windowsOnly ? .windowsImage : .unsupportedManifest, manifestDigest: nil,
                                      inventory: nil,
                                      notes: ["the image index has no \(requested) image; it has \(available.map(\.description).joined(separator: ", "))"])
            }
            guard Self.imageConfigMediaTypes.contains(image.manifest.config.mediaType) else {
                return .notApplicable(reason: .notAnImage, manifestDigest: image.manifestDigest, inventory: nil,
                                      notes: ["the manifest's config has media type \(image.manifest.config.mediaType); it is not a container image"])
            }
            // ocicrypt layers (`…+encrypted`, image-spec `layer.md`) cannot be read without the key.
            if let encrypted = image.manifest.layers.first(where: { $0.mediaType.hasSuffix("+encrypted") }) {
                return .notApplicable(reason: .unsupportedManifest, manifestDigest: image.manifestDigest, inventory: nil,
                                      notes: ["layer \(encrypted.digest) is encrypted (\(encrypted.mediaType)); it cannot be analysed"])
            }
            let config = try await registry.config(endpoint, image: image)
            if config.os.lowercased() == "windows" {
                return .notApplicable(reason: .windowsImage, manifestDigest: image.manifestDigest, inventory: nil,
                                      notes: ["Windows images (os.version \(config.osVersion ?? "unknown")) are not supported"])
            }
            var filesystem = MergedFilesystem()
            var notes: [String] = []
            // Each layer is streamed to a private scratch file while its digest is verified, then read
            // through libarchive from that file in blocks: memory stays bounded by what the catalogers
            // keep, whatever the layer's size, and nothing from the image is ever unpacked or executed.
            let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-scan-\(UUID().uuidString.lowercased())")
            try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: false,
                                                    attributes: [.posixPermissions: 0o700])
            defer { try? FileManager.default.removeItem(at: scratch) }
            for layer in image.manifest.layers {
                if layer.mediaType.contains("foreign") || layer.mediaType.contains("nondistributable") {
                    notes.append("layer \(layer.digest) (\(layer.mediaType)) is non-distributable and was not analysed")
                    continue
                }
                if let cached = try await layerCache.contents(of: layer.digest) {
                    filesystem.apply(cached)
                    continue
                }
                let file = scratch.appendingPathComponent(layer.digest.encoded)
                try await registry.downloadBlob(endpoint, repository: repository, descriptor: layer, to: file)
                let contents = try layerReader.read(fileAt: file)
                try? FileManager.default.removeItem(at: file)
                filesystem.apply(contents)
                try await layerCache.store(contents, for: layer.digest)
            }
            var inventory = Cataloger.inventory(of: filesystem)
            // Cataloger.inventory already carries the filesystem notes.
            inventory.notes = notes + inventory.notes
            if let reason = inventory.notApplicable {
                return .notApplicable(reason: reason, manifestDigest: image.manifestDigest, inventory: inventory,
                                      notes: inventory.notes)
            }
            let result = try await Matcher.match(inventory, store: knowledgeBase)
            inventory.notes += result.notes
            guard !result.namespaces.isEmpty else {
                let os = inventory.operatingSystem.map { "\($0.id) \($0.versionID ?? "")" } ?? "an unidentified OS"
                return .notApplicable(reason: .unsupportedOperatingSystem, manifestDigest: image.manifestDigest,
                                      inventory: inventory,
                                      notes: inventory.notes + ["no vulnerability data covers \(os) or the image's language packages; Gantry does not guess from another release"])
            }
            return .assessed(manifestDigest: image.manifestDigest, inventory: inventory, findings: result.findings,
                             namespace: result.namespace ?? result.namespaces.joined(separator: ","))
        } catch let failure as ScanFailure {
            throw failure
        } catch let error as RegistryError {
            throw Self.classify(error)
        } catch let error as LayerReadError {
            throw .permanent("a layer could not be read: \(error)")
        } catch {
            throw .transient("\(error)")
        }
    }

    static func classify(_ error: RegistryError) -> ScanFailure {
        switch error {
        case .digestMismatch(let expected, let actual):
            .permanent("content verification failed: the registry served bytes with digest \(actual) for \(expected)")
        case .http(let status, _, _) where status >= 500:
            .unreachable("\(error)")
        case .http(429, _, _):
            .transient("\(error)")
        case .transport, .notTLS:
            .unreachable("\(error)")
        default:
            .permanent("\(error)")
        }
    }
}
