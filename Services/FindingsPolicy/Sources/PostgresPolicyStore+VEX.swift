import FindingsPolicyAPI
import Foundation
import PostgresNIO

/// A VEX document as stored: the parsed document and who attached it when.
struct StoredVEX: Sendable {
    var id: UUID
    var subscriptionID: UUID
    var parsed: ParsedVEX
    var attachedAt: Date
    var attachedBy: String

    var attached: AttachedVEX { AttachedVEX(id: id, documentID: parsed.documentID, statements: parsed.statements) }

    func schema(affectedImages: Int? = nil) -> Components.Schemas.VexDocument {
        .init(id: id.uuidString.lowercased(), subscriptionId: subscriptionID.uuidString.lowercased(), format: parsed.format,
              documentId: parsed.documentID, author: parsed.author, version: parsed.version, issuedAt: parsed.issuedAt,
              statements: parsed.statements, attachedAt: attachedAt, attachedBy: attachedBy, affectedImages: affectedImages)
    }
}

/// VEX documents (table `vex_documents`) and their audit log (`vex_audit`).
extension PostgresPolicyStore {
    /// The subscription's documents in attach order (the order matching applies them in).
    func vexDocuments(tenantID: UUID, subscriptionID: UUID, id: UUID? = nil,
                      on connection: PostgresConnection) async throws -> [StoredVEX] {
        let rows = try await connection.query("""
            SELECT id, format, document_id, author, version, issued_at, statements, attached_at, attached_by
            FROM findings_policy.vex_documents
            WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID) AND (\(id)::uuid IS NULL OR id = \(id))
            ORDER BY attached_at, id
            """, logger: logger)
        var documents: [StoredVEX] = []
        for try await (id, format, documentID, author, version, issuedAt, statements, attachedAt, attachedBy)
            in rows.decode((UUID, String, String, String?, String?, Date?, String, Date, String).self) {
            documents.append(StoredVEX(
                id: id, subscriptionID: subscriptionID,
                parsed: ParsedVEX(format: .init(rawValue: format) ?? .openvex, documentID: documentID, author: author,
                                  version: version, issuedAt: issuedAt,
                                  statements: try Self.decoder.decode([VEXStatement].self, from: Data(statements.utf8))),
                attachedAt: attachedAt, attachedBy: attachedBy))
        }
        return documents
    }

    /// Stores a parsed document with the text it came from.
    func save(_ document: StoredVEX, text: String, tenantID: UUID, on connection: PostgresConnection) async throws {
        let parsed = document.parsed
        try await connection.query("""
            INSERT INTO findings_policy.vex_documents (id, tenant_id, subscription_id, format, document_id, author, version,
              issued_at, statements, document, attached_at, attached_by)
            VALUES (\(document.id), \(tenantID), \(document.subscriptionID), \(parsed.format.rawValue), \(parsed.documentID),
              \(parsed.author), \(parsed.version), \(parsed.issuedAt), \(try Self.json(parsed.statements)), \(text),
              \(document.attachedAt), \(document.attachedBy))
            """, logger: logger)
    }

    func deleteVEX(id: UUID, tenantID: UUID, subscriptionID: UUID, on connection: PostgresConnection) async throws {
        try await connection.query("""
            DELETE FROM findings_policy.vex_documents WHERE tenant_id = \(tenantID) AND subscription_id = \(subscriptionID) AND id = \(id)
            """, logger: logger)
    }

    /// Records an attach or detach.
    func auditVEX(_ action: String, document: StoredVEX, tenantID: UUID, actor: String, affectedImages: Int,
                  on connection: PostgresConnection) async throws {
        try await connection.query("""
            INSERT INTO findings_policy.vex_audit (id, tenant_id, subscription_id, vex_document_id, action, actor, document_id,
              affected_images)
            VALUES (\(UUID()), \(tenantID), \(document.subscriptionID), \(document.id), \(action), \(actor),
              \(document.parsed.documentID), \(affectedImages))
            """, logger: logger)
    }
}
