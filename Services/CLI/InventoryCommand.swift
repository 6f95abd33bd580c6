import ArgumentParser
import Foundation
import GantryModel
import ImageAnalysis

/// `gantry inventory ARCHIVE`: analyses an OCI image-layout archive offline (no services, no registry)
/// with the same layer reader, merge rules and catalogers as the scanner, and prints the inventory as JSON.
struct InventoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inventory",
        abstract: "Print the OS and packages of an OCI image-layout archive (offline).")

    @Argument(help: "An OCI image-layout tar archive (for example a corpus images/*.oci.tar).")
    var archive: String

    @Option(help: "Platform to analyse in an image index, as os/architecture.")
    var platform: String = "linux/amd64"

    func run() async throws {
        let inventory = try Self.inventory(archive: archive, platform: platform)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        print(String(decoding: try encoder.encode(inventory), as: UTF8.self))
    }

    /// - Throws: `CLIError` for an unreadable archive, a missing platform or a missing blob; `LayerReadError`
    ///   for a layer that is not a safe tar.
    static func inventory(archive: String, platform: String) throws -> ImageInventory {
        let parts = platform.split(separator: "/").map(String.init)
        guard parts.count == 2 else { throw CLIError("platform must be os/architecture, for example linux/amd64") }
        let path = archive.hasPrefix("oci-archive:") ? String(archive.dropFirst("oci-archive:".count)) : archive
        guard FileManager.default.isReadableFile(atPath: path) else { throw CLIError("\(path): no such readable file") }
        // Streamed: blobs go to a private scratch directory, so memory stays bounded whatever the archive's size.
        let image: OCIArchive
        do { image = try OCIArchive(fileAt: URL(fileURLWithPath: path)) } catch { throw CLIError("\(archive): \(error)") }
        defer { image.removeScratch() }
        let digests: [Digest]
        do { digests = try image.layerDigests(os: parts[0], architecture: parts[1]) } catch {
            throw CLIError("\(archive): \(error)")
        }
        var filesystem = MergedFilesystem()
        let reader = LayerReader()
        for digest in digests {
            let file: URL
            do { file = try image.blobFile(digest) } catch { throw CLIError("\(archive): \(error)") }
            filesystem.apply(try reader.read(fileAt: file))
        }
        return Cataloger.inventory(of: filesystem)
    }
}
