import FindingsPolicyAPI
import Foundation
import GantryRuntime
import OpenAPIRuntime
import PostgresNIO

/// VEX documents (OpenVEX 0.2.0, CSAF 2.0 VEX) attached to a subscription. Attaching or detaching one re-evaluates
/// every image of the subscription in the same transaction, so the response already reflects it; both are audited.
// NOTE: attach and detach are for Security Admins and Owners once user authentication exists; reading for readers.
extension FindingsPolicyAPIImpl {
    func listVexDocuments(_ input: Operations.ListVexDocuments.Input) async throws -> Operations.ListVexDocuments.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        let store = self.store
        let documents = try await runtime.database.withTenant(tenantID, logger: runtime.logger) { connection in
            try await store.vexDocuments(tenantID: tenantID, subscriptionID: subscriptionID, on: connection)
        }
        return .ok(.init(body: .json(.init(items: documents.reversed().map { $0.schema() }))))
    }

    func getVexDocument(_ input: Operations.GetVexDocument.Input) async throws -> Operations.GetVexDocument.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        let id = try Validate.uuid(input.path.vexDocumentId, field: "vexDocumentId")
        let store = self.store
        guard let document = try await runtime.database.withTenant(tenantID, logger: runtime.logger, { connection in
            try await store.vexDocuments(tenantID: tenantID, subscriptionID: subscriptionID, id: id, on: connection).first
        }) else { throw Self.noVEX(id, subscriptionID) }
        return .ok(.init(body: .json(document.schema())))
    }

    func attachVexDocument(_ input: Operations.AttachVexDocument.Input) async throws -> Operations.AttachVexDocument.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        let actor = try Self.actor()
        guard case .json(let body) = input.body else { throw ProblemError.badRequest("expected a JSON body") }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let data = try encoder.encode(body)
        // Parsed and checked completely before anything is stored.
        let parsed = try VEXParser.parse(data)
        let document = StoredVEX(id: UUID(), subscriptionID: subscriptionID, parsed: parsed, attachedAt: Date(), attachedBy: actor)
        let store = self.store
        let engine = self.engine
        let affected = try await change(tenantID: tenantID, subscriptionID: subscriptionID) { connection -> Int in
            try await store.save(document, text: String(decoding: data, as: UTF8.self), tenantID: tenantID, on: connection)
            let affected = try await engine.reevaluate(tenantID: tenantID, subscriptionID: subscriptionID,
                                                       scopes: [RuleScope(kind: .subscription)], on: connection)
            try await store.auditVEX("attached", document: document, tenantID: tenantID, actor: actor, affectedImages: affected,
                                     on: connection)
            return affected
        }
        return .created(.init(body: .json(document.schema(affectedImages: affected))))
    }

    func deleteVexDocument(_ input: Operations.DeleteVexDocument.Input) async throws -> Operations.DeleteVexDocument.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        let id = try Validate.uuid(input.path.vexDocumentId, field: "vexDocumentId")
        let actor = try Self.actor()
        let store = self.store
        let engine = self.engine
        try await change(tenantID: tenantID, subscriptionID: subscriptionID) { connection in
            guard let document = try await store.vexDocuments(tenantID: tenantID, subscriptionID: subscriptionID, id: id,
                                                              on: connection).first else {
                throw Self.noVEX(id, subscriptionID)
            }
            try await store.deleteVEX(id: id, tenantID: tenantID, subscriptionID: subscriptionID, on: connection)
            let affected = try await engine.reevaluate(tenantID: tenantID, subscriptionID: subscriptionID,
                                                       scopes: [RuleScope(kind: .subscription)], on: connection)
            try await store.auditVEX("detached", document: document, tenantID: tenantID, actor: actor, affectedImages: affected,
                                     on: connection)
        }
        return .noContent(.init())
    }

    static func noVEX(_ id: UUID, _ subscriptionID: UUID) -> ProblemError {
        .notFound("VEX document \(id.uuidString.lowercased()) is not attached to subscription \(subscriptionID.uuidString.lowercased())")
    }
}
