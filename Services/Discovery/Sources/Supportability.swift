import Foundation
import GantryModel
import RegistryClient

/// Whether Gantry can assess an image, and why not (issue 6, item 4). Only `supported` images are scanned and
/// billed; the others are listed with their reason.
enum Classification: String, Sendable {
    case supported, windows, noPackageDatabase, unsupportedManifest, notAnImage
}

/// Classifies a manifest from the registry, reusing `RegistryClient`'s recognition of schema 1, artifacts,
/// nested indexes and platforms; fetches the config (a small JSON blob) only to tell Windows images apart.
/// `noPackageDatabase` (scratch) needs the layers' contents and so comes only from a scan.
struct Supportability: Sendable {
    let client: RegistryClient

    /// - Returns: the classification and a one-line reason naming the media type, platform or layer concerned.
    /// - Throws: transport, authorization and not-found errors, which say nothing about the image itself.
    func classify(_ endpoint: RegistryEndpoint, repository: String, manifest: FetchedManifest) async throws
        -> (Classification, String) {
        let type = manifest.mediaType
        if MediaType.isSchema1(type) {
            return (.unsupportedManifest, "Docker schema 1 manifest (\(type)), deprecated; push it again with a current client")
        }
        guard MediaType.isImageManifest(type) || MediaType.isIndex(type) else {
            return (.notAnImage, "media type '\(type.prefix(200))' is neither an image manifest nor an index")
        }
        if MediaType.isImageManifest(type), let artifact = Self.artifactType(manifest.bytes) {
            return (.notAnImage, artifact)
        }
        let image: ResolvedImage
        do {
            image = try await client.resolveImage(endpoint, repository: repository, reference: manifest.digest.description)
        } catch RegistryError.platformNotFound(let requested, let available) {
            if !available.isEmpty, available.allSatisfy({ $0.os == "windows" }) {
                return (.windows, "the index holds Windows images only (\(available.map(\.description).joined(separator: ", ")))")
            }
            return (.unsupportedManifest, "the index has no \(requested) image; it has "
                        + (available.isEmpty ? "no platforms" : available.map(\.description).joined(separator: ", ")))
        } catch RegistryError.unsupportedMediaType(let detail) {
            return (detail.contains("artifact") ? .notAnImage : .unsupportedManifest, detail)
        } catch RegistryError.malformed(let detail) {
            return (.unsupportedManifest, detail)
        } catch RegistryError.tooLarge(let what, _, let limit, let unit) {
            return (.unsupportedManifest, "\(what) exceeds \(limit) \(unit)")
        }
        if let encrypted = image.manifest.layers.first(where: { $0.mediaType.hasSuffix("+encrypted") }) {
            return (.unsupportedManifest, "layer \(encrypted.digest) is encrypted (\(encrypted.mediaType))")
        }
        let config: ImageConfig
        do {
            config = try await client.config(endpoint, image: image)
        } catch RegistryError.unsupportedMediaType(let detail) {
            return (.notAnImage, detail)
        } catch RegistryError.malformed(let detail) {
            return (.unsupportedManifest, detail)
        }
        if config.os.lowercased() == "windows" {
            return (.windows, "Windows image (os.version \(config.osVersion ?? "unknown"))")
        }
        if image.manifest.layers.isEmpty {
            return (.noPackageDatabase, "the image has no layers")
        }
        return (.supported, "\(config.os)/\(config.architecture) image, manifest \(image.manifestDigest)")
    }

    /// The reason an image manifest is an artifact (image-spec `manifest.md`: `artifactType`, or a config that is
    /// not an image configuration, as Helm charts, signatures and SBOMs have), or nil for an image.
    static func artifactType(_ bytes: [UInt8]) -> String? {
        struct Shape: Decodable {
            struct Config: Decodable { var mediaType: String? }
            var config: Config?
            var artifactType: String?
        }
        guard let shape = try? JSONDecoder().decode(Shape.self, from: Data(bytes)) else { return nil }
        if let configType = shape.config?.mediaType, !MediaType.isImageConfig(configType) {
            return "an artifact, not a container image: config media type '\(configType.prefix(200))'"
                + (shape.artifactType.map { ", artifactType '\($0.prefix(200))'" } ?? "")
        }
        return nil
    }
}
