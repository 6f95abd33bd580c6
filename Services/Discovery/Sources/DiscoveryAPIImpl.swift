import DiscoveryAPI
import Foundation
import GantryModel
import GantryRuntime
import RegistryClient

/// Discovery's HTTP API (Shared/Contracts/specs/discovery.yaml).
struct DiscoveryAPIImpl: APIProtocol {
    let store: PostgresDiscoveryStore
    let sealer: CredentialSealer
    let configuration: GantryConfiguration
    let settings: DiscoverySettings
    let crawler: Crawler

    func createTenant(_ input: Operations.CreateTenant.Input) async throws -> Operations.CreateTenant.Output {
        guard case .json(let body) = input.body else { throw ProblemError.badRequest("expected a JSON body") }
        let name = try Validate.text(body.name, field: "name")
        let id = UUID()
        guard let createdAt = try await store.createTenant(id: id, name: name) else {
            throw ProblemError.conflict("a tenant named '\(name)' already exists")
        }
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
        guard try await store.tenantExists(tenantID) else { throw ProblemError.notFound("tenant \(tenantID.uuidString.lowercased()) does not exist") }
        guard let record = try await store.createSubscription(tenantID: tenantID, id: UUID(), name: name, cloudType: cloudType,
                                                              actor: AuditActor.current()) else {
            throw ProblemError.conflict("tenant \(tenantID.uuidString.lowercased()) already has a subscription named '\(name)'")
        }
        return .created(.init(body: .json(Self.schema(record))))
    }

    func setPlan(_ input: Operations.SetPlan.Input) async throws -> Operations.SetPlan.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let subscriptionID = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        guard case .json(let body) = input.body else { throw ProblemError.badRequest("expected a JSON body") }
        guard let record = try await store.setPlan(tenantID: tenantID, subscriptionID: subscriptionID, enabled: body.enabled,
                                                   actor: AuditActor.current()) else {
            throw ProblemError.notFound("subscription \(subscriptionID.uuidString.lowercased()) does not exist in tenant \(tenantID.uuidString.lowercased())")
        }
        return .ok(.init(body: .json(Self.schema(record))))
    }

    func listPlanHistory(_ input: Operations.ListPlanHistory.Input) async throws -> Operations.ListPlanHistory.Output {
        let (tenantID, subscriptionID) = try await subscriptionPath(input.path.tenantId, input.path.subscriptionId)
        let history = try await store.planHistory(tenantID: tenantID, subscriptionID: subscriptionID)
        return .ok(.init(body: .json(.init(items: history.map { .init(enabled: $0.enabled, actor: $0.actor, at: $0.at) }))))
    }

    func listAuditLog(_ input: Operations.ListAuditLog.Input) async throws -> Operations.ListAuditLog.Output {
        let tenantID = try Validate.uuid(input.path.tenantId, field: "tenantId")
        let limit = try Self.limit(input.query.limit)
        guard try await store.tenantExists(tenantID) else { throw ProblemError.notFound("tenant \(tenantID.uuidString.lowercased()) does not exist") }
        let entries = try await store.auditLog(tenantID: tenantID, limit: limit)
        return .ok(.init(body: .json(.init(items: entries.map {
            .init(id: $0.id, actor: $0.actor, action: $0.action, subject: $0.subject.lowercased(), detail: $0.detail, at: $0.at)
        }))))
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
        // SSRF guard at registration: the name must not resolve to a refused address (checked again at every connection).
        if let host = CloudProfile.host(ofLoginServer: loginServer) {
            do {
                try settings.addressGuard.check(host: host, describing: loginServer, allowUnresolved: true)
            } catch {
                throw ProblemError.badRequest("loginServer: \(error.reason)")
            }
        }
        let networkAccess = NetworkAccess(rawValue: body.networkAccess?.rawValue ?? "public") ?? .public
        let credentials = try body.credentials.map(Self.credentials)
        guard try await store.subscription(tenantID: tenantID, id: subscriptionID) != nil else {
            throw ProblemError.notFound("subscription \(subscriptionID.uuidString.lowercased()) does not exist in tenant \(tenantID.uuidString.lowercased())")
        }
        let id = UUID()
        let sealed = try credentials.map { try sealer.seal($0, registryID: id) }
        let record = RegistryRecord(id: id, tenantID: tenantID, subscriptionID: subscriptionID, loginServer: loginServer,
                                    insecure: insecure, credentialsSealed: sealed?.sealed,
                                    credentialKind: credentials.map { $0.kind ?? "basic" }, keyID: sealed?.keyID,
                                    networkAccess: networkAccess, lastCrawlAt: nil, onboardedAt: nil, createdAt: Date())
        guard let created = try await store.createRegistry(record, actor: AuditActor.current()) else {
            throw ProblemError.conflict("registry \(loginServer) is already registered")
        }
        return .created(.init(body: .json(Self.schema(created))))
    }

    /// Validates credentials: basic needs username and password; token needs the token (username defaults to `<token>`).
    static func credentials(_ input: Components.Schemas.CredentialsInput) throws -> CredentialSealer.Credentials {
        switch input.kind ?? .basic {
        case .basic:
            guard let username = input.username, let password = input.password, input.token == nil else {
                throw ProblemError.badRequest("credentials: kind basic needs username and password (and no token)")
            }
            guard !password.isEmpty else { throw ProblemError.badRequest("credentials.password must not be empty") }
            return .init(kind: nil, username: try Validate.text(username, field: "credentials.username", maxLength: 512),
                         password: password)
        case .token:
            guard let token = input.token, !token.isEmpty, input.password == nil else {
                throw ProblemError.badRequest("credentials: kind token needs a non-empty token (and no password)")
            }
            let username = try input.username.map { try Validate.text($0, field: "credentials.username", maxLength: 512) }
            return .init(kind: "token", username: username ?? "<token>", password: token)
        }
    }

    func listRegistries(_ input: Operations.ListRegistries.Input) async throws -> Operations.ListRegistries.Output {
        let (tenantID, subscriptionID) = try await subscriptionPath(input.path.tenantId, input.path.subscriptionId)
        let records = try await store.registries(tenantID: tenantID, subscriptionID: subscriptionID)
        return .ok(.init(body: .json(.init(items: records.map(Self.schema)))))
    }

    func triggerCrawl(_ input: Operations.TriggerCrawl.Input) async throws -> Operations.TriggerCrawl.Output {
        let registry = try await registryPath(input.path.tenantId, input.path.subscriptionId, input.path.registryId)
        guard let crawl = try await crawler.crawl(registry) else {
            throw ProblemError.conflict("a crawl of registry \(registry.loginServer) is already running")
        }
        return .ok(.init(body: .json(Self.schema(crawl))))
    }

    func listCrawls(_ input: Operations.ListCrawls.Input) async throws -> Operations.ListCrawls.Output {
        let limit = try Self.limit(input.query.limit)
        let registry = try await registryPath(input.path.tenantId, input.path.subscriptionId, input.path.registryId)
        let crawls = try await store.crawls(tenantID: registry.tenantID, registryID: registry.id, limit: limit)
        return .ok(.init(body: .json(.init(items: crawls.map(Self.schema)))))
    }

    func listRepositories(_ input: Operations.ListRepositories.Input) async throws -> Operations.ListRepositories.Output {
        let registry = try await registryPath(input.path.tenantId, input.path.subscriptionId, input.path.registryId)
        let rows = try await store.repositories(tenantID: registry.tenantID, registryID: registry.id)
        return .ok(.init(body: .json(.init(items: rows.map {
            .init(name: $0.name, firstSeenAt: $0.firstSeenAt, lastSeenAt: $0.lastSeenAt, removedAt: $0.removedAt)
        }))))
    }

    func listTags(_ input: Operations.ListTags.Input) async throws -> Operations.ListTags.Output {
        let repository = try Validate.repository(input.query.repository, field: "repository")
        let registry = try await registryPath(input.path.tenantId, input.path.subscriptionId, input.path.registryId)
        let rows = try await store.tags(tenantID: registry.tenantID, registryID: registry.id, repository: repository)
        return .ok(.init(body: .json(.init(items: rows.map {
            .init(tag: $0.tag, digest: $0.digest, current: $0.supersededAt == nil && $0.removedAt == nil,
                  firstSeenAt: $0.firstSeenAt, lastSeenAt: $0.lastSeenAt, supersededAt: $0.supersededAt, removedAt: $0.removedAt)
        }))))
    }

    func listDigests(_ input: Operations.ListDigests.Input) async throws -> Operations.ListDigests.Output {
        let repository = try Validate.repository(input.query.repository, field: "repository")
        let registry = try await registryPath(input.path.tenantId, input.path.subscriptionId, input.path.registryId)
        let rows = try await store.digests(tenantID: registry.tenantID, registryID: registry.id, repository: repository)
        return .ok(.init(body: .json(.init(items: rows.map {
            .init(repository: $0.repository, digest: $0.digest, mediaType: $0.mediaType,
                  classification: .init(rawValue: $0.classification) ?? .unsupportedManifest, reason: $0.reason,
                  firstSeenAt: $0.firstSeenAt, lastSeenAt: $0.lastSeenAt, removedAt: $0.removedAt)
        }))))
    }

    func resealCredentials(_ input: Operations.ResealCredentials.Input) async throws -> Operations.ResealCredentials.Output {
        var resealed = 0
        for record in try await store.registriesSealed(notUnder: sealer.currentKeyID) {
            guard let stored = record.credentialsSealed else { continue }
            let clear = try sealer.open(stored, keyID: record.keyID, registryID: record.id)
            let sealed = try sealer.seal(clear, registryID: record.id)
            if try await store.reseal(tenantID: record.tenantID, registryID: record.id, previous: stored, sealed: sealed.sealed, keyID: sealed.keyID) {
                resealed += 1
            }
        }
        return .ok(.init(body: .json(.init(keyId: sealer.currentKeyID, resealed: resealed))))
    }

    func recordClassification(_ input: Operations.RecordClassification.Input) async throws -> Operations.RecordClassification.Output {
        let registryID = try Validate.uuid(input.path.registryId, field: "registryId")
        guard case .json(let body) = input.body else { throw ProblemError.badRequest("expected a JSON body") }
        let repository = try Validate.repository(body.repository, field: "repository")
        let digest = try Validate.digest(body.digest, field: "digest")
        let reason = try Validate.text(body.reason, field: "reason", maxLength: 2000)
        guard let registry = try await store.registry(id: registryID) else {
            throw ProblemError.notFound("registry \(registryID.uuidString.lowercased()) does not exist")
        }
        try await store.recordClassification(tenantID: registry.tenantID, registryID: registryID, repository: repository,
                                             digest: digest.description, classification: body.classification.rawValue,
                                             reason: reason)
        return .noContent(.init())
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
            throw ProblemError.notFound("registry \(id.uuidString.lowercased()) does not exist")
        }
        return .ok(.init(body: .json(try await access(record))))
    }

    func getSubscriptionOwner(_ input: Operations.GetSubscriptionOwner.Input) async throws -> Operations.GetSubscriptionOwner.Output {
        let id = try Validate.uuid(input.path.subscriptionId, field: "subscriptionId")
        guard let record = try await store.subscription(id: id) else {
            throw ProblemError.notFound("subscription \(id.uuidString.lowercased()) does not exist")
        }
        return .ok(.init(body: .json(.init(subscriptionId: record.id.uuidString.lowercased(),
                                           tenantId: record.tenantID.uuidString.lowercased(),
                                           cloudType: .init(rawValue: record.cloudType.rawValue) ?? .commercial,
                                           planEnabled: record.planEnabled))))
    }

    private func access(_ record: RegistryRecord) async throws -> Components.Schemas.RegistryAccess {
        guard let subscription = try await store.subscription(tenantID: record.tenantID, id: record.subscriptionID) else {
            throw ProblemError.notFound("the subscription of registry \(record.id.uuidString.lowercased()) no longer exists")
        }
        let credentials = try record.credentialsSealed.map { try sealer.open($0, keyID: record.keyID, registryID: record.id) }
        return .init(
            registryId: record.id.uuidString.lowercased(), tenantId: record.tenantID.uuidString.lowercased(),
            subscriptionId: record.subscriptionID.uuidString.lowercased(), loginServer: record.loginServer,
            baseURL: "\(record.insecure ? "http" : "https")://\(record.loginServer)",
            planEnabled: subscription.planEnabled,
            cloudType: .init(rawValue: subscription.cloudType.rawValue) ?? .commercial,
            credentials: credentials.map { .init(username: $0.username, password: $0.password) },
            networkAccess: .init(rawValue: record.networkAccess.rawValue),
            applicable: record.networkAccess.notApplicableReason == nil,
            notApplicableReason: record.networkAccess.notApplicableReason)
    }

    /// Parses and checks the tenant and subscription of a path; 400 for a malformed ID, 404 when unknown.
    private func subscriptionPath(_ tenant: String, _ subscription: String) async throws -> (UUID, UUID) {
        let tenantID = try Validate.uuid(tenant, field: "tenantId")
        let subscriptionID = try Validate.uuid(subscription, field: "subscriptionId")
        guard try await store.subscription(tenantID: tenantID, id: subscriptionID) != nil else {
            throw ProblemError.notFound("subscription \(subscriptionID.uuidString.lowercased()) does not exist in tenant \(tenantID.uuidString.lowercased())")
        }
        return (tenantID, subscriptionID)
    }

    /// The registry of a path; 400 for a malformed ID, 404 when it is not in that tenant's subscription.
    private func registryPath(_ tenant: String, _ subscription: String, _ registry: String) async throws -> RegistryRecord {
        let tenantID = try Validate.uuid(tenant, field: "tenantId")
        let subscriptionID = try Validate.uuid(subscription, field: "subscriptionId")
        let registryID = try Validate.uuid(registry, field: "registryId")
        guard let record = try await store.registry(tenantID: tenantID, subscriptionID: subscriptionID, id: registryID) else {
            throw ProblemError.notFound("registry \(registryID.uuidString.lowercased()) does not exist in subscription \(subscriptionID.uuidString.lowercased()) of tenant \(tenantID.uuidString.lowercased())")
        }
        return record
    }

    static func limit(_ value: Int?) throws -> Int {
        let limit = value ?? 100
        guard (1...1000).contains(limit) else { throw ProblemError.badRequest("limit must be between 1 and 1000") }
        return limit
    }

    static func schema(_ record: SubscriptionRecord) -> Components.Schemas.Subscription {
        .init(id: record.id.uuidString.lowercased(), tenantId: record.tenantID.uuidString.lowercased(), name: record.name,
              cloudType: .init(rawValue: record.cloudType.rawValue) ?? .commercial, planEnabled: record.planEnabled,
              planChangedAt: record.planChangedAt, enabledAt: record.enabledAt, disabledAt: record.disabledAt,
              createdAt: record.createdAt)
    }

    static func schema(_ record: RegistryRecord) -> Components.Schemas.Registry {
        .init(id: record.id.uuidString.lowercased(), tenantId: record.tenantID.uuidString.lowercased(),
              subscriptionId: record.subscriptionID.uuidString.lowercased(), loginServer: record.loginServer,
              insecure: record.insecure, hasCredentials: record.credentialsSealed != nil,
              credentialKind: record.credentialKind.flatMap { .init(rawValue: $0) },
              credentialKeyId: record.credentialsSealed == nil ? nil : (record.keyID ?? "default"),
              networkAccess: .init(rawValue: record.networkAccess.rawValue),
              applicable: record.networkAccess.notApplicableReason == nil,
              notApplicableReason: record.networkAccess.notApplicableReason,
              lastCrawlAt: record.lastCrawlAt, createdAt: record.createdAt)
    }

    static func schema(_ record: CrawlRecord) -> Components.Schemas.Crawl {
        .init(id: record.id.uuidString.lowercased(), registryId: record.registryID.uuidString.lowercased(),
              status: .init(rawValue: record.status) ?? .failed, error: record.error, startedAt: record.startedAt,
              finishedAt: record.finishedAt, repositories: record.repositories, tags: record.tags, digests: record.digests,
              pages: record.pages, onboardingScans: record.onboardingScans)
    }
}
