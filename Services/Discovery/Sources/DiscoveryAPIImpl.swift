import DiscoveryAPI
import Foundation
import GantryModel
import GantryRuntime

/// Discovery's HTTP API (Shared/Contracts/specs/discovery.yaml).
struct DiscoveryAPIImpl: APIProtocol {
    let store: PostgresDiscoveryStore
    let sealer: CredentialSealer
    let configuration: GantryConfiguration

    func createTenant(_ input: Operations.CreateTenant.Input) async throws -> Operations.CreateTenant.Output {
        guard case .json(let body) = input.body else { throw ProblemError.badRequest("expected a JSON body") }
        let name = try Validate.text(body.name, field: "name")
        let id = UUID()
        let createdAt = try await store.createTenant(id: id, name: name)
        return .created(.init(body: .json(.init(id: id.uuidString.lowercased(), name: name, createdAt: createdAt))))
    }

    func createSubscription(_ input: Operations.CreateSubscription.Input) async throws -> Operations.CreateSubscription.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        guard case .json(let body) = input.body else { throw ProblemError.badRequest("expected a JSON body") }
        let name = try Validate.text(body.name, field: "name")
        guard let cloudType = CloudType(rawValue: body.cloudType.rawValue) else {
            throw ProblemError.badRequest("cloudType must be commercial, government or china")
        }
        guard cloudType == configuration.cloud.cloudType else {
            throw ProblemError.conflict(
                "this deployment serves the \(configuration.cloud.cloudType.rawValue) cloud; a \(cloudType.rawValue) subscription belongs to another deployment")
        }
        guard try await store.tenantExists(tenantID) else { throw ProblemError.notFound("tenant \(tenantID) does not exist") }
        let record = try await store.createSubscription(tenantID: tenantID, id: UUID(), name: name, cloudType: cloudType)
        return .created(.init(body: .json(Self.schema(record))))
    }

    func setPlan(_ input: Operations.SetPlan.Input) async throws -> Operations.SetPlan.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        guard case .json(let body) = input.body else { throw ProblemError.badRequest("expected a JSON body") }
        guard let record = try await store.setPlan(tenantID: tenantID, subscriptionID: subscriptionID, enabled: body.enabled) else {
            throw ProblemError.notFound("subscription \(subscriptionID) does not exist in tenant \(tenantID)")
        }
        return .ok(.init(body: .json(Self.schema(record))))
    }

    func registerRegistry(_ input: Operations.RegisterRegistry.Input) async throws -> Operations.RegisterRegistry.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        guard case .json(let body) = input.body else { throw ProblemError.badRequest("expected a JSON body") }
        let loginServer = body.loginServer.lowercased()
        if let refusal = configuration.cloud.refusal(forLoginServer: loginServer, profile: configuration.profile) {
            throw ProblemError.badRequest("loginServer: \(refusal)")
        }
        let insecure = body.insecure ?? false
        if insecure && configuration.profile != .development {
            throw ProblemError.badRequest("insecure (plain HTTP) registries are accepted only in the development profile")
        }
        guard try await store.subscription(tenantID: tenantID, id: subscriptionID) != nil else {
            throw ProblemError.notFound("subscription \(subscriptionID) does not exist in tenant \(tenantID)")
        }
        let sealed = try body.credentials.map {
            try sealer.seal(.init(username: try Validate.text($0.username, field: "credentials.username", maxLength: 512),
                                  password: $0.password))
        }
        let record = RegistryRecord(id: UUID(), tenantID: tenantID, subscriptionID: subscriptionID, loginServer: loginServer,
                                    insecure: insecure, credentialsSealed: sealed, createdAt: Date())
        guard let created = try await store.createRegistry(record) else {
            throw ProblemError.conflict("registry \(loginServer) is already registered")
        }
        return .created(.init(body: .json(Self.schema(created))))
    }

    func listRegistries(_ input: Operations.ListRegistries.Input) async throws -> Operations.ListRegistries.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        guard try await store.subscription(tenantID: tenantID, id: subscriptionID) != nil else {
            throw ProblemError.notFound("subscription \(subscriptionID) does not exist in tenant \(tenantID)")
        }
        let records = try await store.registries(tenantID: tenantID, subscriptionID: subscriptionID)
        return .ok(.init(body: .json(.init(items: records.map(Self.schema)))))
    }

    func lookupRegistry(_ input: Operations.LookupRegistry.Input) async throws -> Operations.LookupRegistry.Output {
        guard let record = try await store.registry(loginServer: input.query.host) else {
            throw ProblemError.notFound("no registry is registered for host '\(input.query.host.prefix(255))'")
        }
        return .ok(.init(body: .json(try await access(record))))
    }

    func getRegistryAccess(_ input: Operations.GetRegistryAccess.Input) async throws -> Operations.GetRegistryAccess.Output {
        let id = try Validate.uuid(input.path.registryId, field: "registryId")
        guard let record = try await store.registry(id: id) else {
            throw ProblemError.notFound("registry \(id) does not exist")
        }
        return .ok(.init(body: .json(try await access(record))))
    }

    private func access(_ record: RegistryRecord) async throws -> Components.Schemas.RegistryAccess {
        guard let subscription = try await store.subscription(tenantID: record.tenantID, id: record.subscriptionID) else {
            throw ProblemError.notFound("the subscription of registry \(record.id) no longer exists")
        }
        let credentials = try record.credentialsSealed.map { try sealer.open($0) }
        return .init(
            registryId: record.id.uuidString.lowercased(), tenantId: record.tenantID.uuidString.lowercased(),
            subscriptionId: record.subscriptionID.uuidString.lowercased(), loginServer: record.loginServer,
            baseURL: "\(record.insecure ? "http" : "https")://\(record.loginServer)",
            planEnabled: subscription.planEnabled,
            cloudType: .init(rawValue: subscription.cloudType.rawValue) ?? .commercial,
            credentials: credentials.map { .init(username: $0.username, password: $0.password) })
    }

    static func schema(_ record: SubscriptionRecord) -> Components.Schemas.Subscription {
        .init(id: record.id.uuidString.lowercased(), tenantId: record.tenantID.uuidString.lowercased(), name: record.name,
              cloudType: .init(rawValue: record.cloudType.rawValue) ?? .commercial, planEnabled: record.planEnabled,
              planChangedAt: record.planChangedAt, createdAt: record.createdAt)
    }

    static func schema(_ record: RegistryRecord) -> Components.Schemas.Registry {
        .init(id: record.id.uuidString.lowercased(), tenantId: record.tenantID.uuidString.lowercased(),
              subscriptionId: record.subscriptionID.uuidString.lowercased(), loginServer: record.loginServer,
              insecure: record.insecure, hasCredentials: record.credentialsSealed != nil, createdAt: record.createdAt)
    }
}
