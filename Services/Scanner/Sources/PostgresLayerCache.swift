import Foundation
import GantryModel
import ImageAnalysis
import Logging
import NIOCore
import PostgresNIO

/// Per-layer analysis results in `scanner.layer_cache`, so a base layer shared by a thousand images is
/// downloaded and read once.
///
/// The key is the layer blob's digest, which the scanner verifies on every download, plus
/// `LayerContents.analyzerVersion`. The config's diff ID is not used as the key: it is the image's
/// unverified claim about the uncompressed bytes, and a hostile image could name a benign layer's
/// diff ID to borrow its clean analysis.
struct PostgresLayerCache: Sendable {
    let database: PostgresClient
    let logger: Logger

    func contents(of layer: Digest) async throws -> LayerContents? {
        let rows = try await database.query("""
            UPDATE scanner.layer_cache SET last_used_at = now()
            WHERE layer_digest = \(layer.description) AND analyzer_version = \(LayerContents.analyzerVersion)
            RETURNING contents
            """, logger: logger)
        for try await buffer in rows.decode(ByteBuffer.self) {
            do {
                return try LayerContents.decoded(from: Data(buffer.readableBytesView))
            } catch {
                logger.warning("unreadable layer cache entry ignored", metadata: ["layer": "\(layer)", "error": "\(error)"])
                return nil
            }
        }
        return nil
    }

    func store(_ contents: LayerContents, for layer: Digest) async throws {
        let data = try contents.encoded()
        try await database.query("""
            INSERT INTO scanner.layer_cache (layer_digest, analyzer_version, contents)
            VALUES (\(layer.description), \(LayerContents.analyzerVersion), \(ByteBuffer(bytes: data)))
            ON CONFLICT (layer_digest, analyzer_version) DO UPDATE SET last_used_at = now()
            """, logger: logger)
    }
}
