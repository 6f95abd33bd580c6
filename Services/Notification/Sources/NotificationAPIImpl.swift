import Foundation
import RegistryClient
import GantryModel
import GantryRuntime
import Logging
import NotificationAPI
import PostgresNIO

/// Notification's HTTP API (Shared/Contracts/specs/notification.yaml).
struct NotificationAPIImpl: APIProtocol {
    let runtime: ServiceRuntime
    let settings: NotificationSettings
    let store: PostgresNotificationStore
    let router: AlertRouter
    /// Built once; the error (no `GANTRY_SECRET_KEY`) is thrown by a request that needs to seal.
    let sealer: Result<SecretSealer, any Error>

    init(runtime: ServiceRuntime, settings: NotificationSettings) {
        self.runtime = runtime
        self.settings = settings
        sealer = Result { try SecretSealer(configuration: runtime.configuration) }
        store = PostgresNotificationStore(database: runtime.database, logger: runtime.logger)
        router = AlertRouter(database: runtime.database, inbox: runtime.inbox, logger: runtime.logger,
                             retryWindow: settings.retryWindow)
    }

    // MARK: Channels

    func createChannel(_ input: Operations.CreateChannel.Input) async throws -> Operations.CreateChannel.Output {
        let (tenantID, subscriptionID) = try Self.scope(input.path.tenantId, input.path.subscriptionId)
        guard case .json(let body) = input.body else { throw ProblemError.badRequest("expected a JSON body") }
        let kind = Channel.Kind(rawValue: body._type.rawValue) ?? .webhook
        let channel = try makeChannel(tenantID: tenantID, subscriptionID: subscriptionID, kind: kind, name: body.name,
                                      url: body.url, secret: body.secret, recipients: body.recipients)
        try await store.insertChannel(channel)
        return .created(.init(body: .json(Self.schema(channel))))
    }

    func listChannels(_ input: Operations.ListChannels.Input) async throws -> Operations.ListChannels.Output {
        let (tenantID, subscriptionID) = try Self.scope(input.path.tenantId, input.path.subscriptionId)
        let channels = try await store.channels(tenantID: tenantID, subscriptionID: subscriptionID)
        return .ok(.init(body: .json(.init(items: channels.map(Self.schema)))))
    }

    func getChannel(_ input: Operations.GetChannel.Input) async throws -> Operations.GetChannel.Output {
        let (tenantID, subscriptionID) = try Self.scope(input.path.tenantId, input.path.subscriptionId)
        let id = try Validate.uuid(input.path.channelId, field: "channelId")
        guard let channel = try await store.channel(tenantID: tenantID, subscriptionID: subscriptionID, id: id) else {
            throw ProblemError.notFound("no channel \(id.uuidString.lowercased()) in subscription \(subscriptionID.uuidString.lowercased())")
        }
        return .ok(.init(body: .json(Self.schema(channel))))
    }

    func deleteChannel(_ input: Operations.DeleteChannel.Input) async throws -> Operations.DeleteChannel.Output {
        let (tenantID, subscriptionID) = try Self.scope(input.path.tenantId, input.path.subscriptionId)
        let id = try Validate.uuid(input.path.channelId, field: "channelId")
        guard try await store.deleteChannel(tenantID: tenantID, subscriptionID: subscriptionID, id: id) else {
            throw ProblemError.notFound("no channel \(id.uuidString.lowercased()) in subscription \(subscriptionID.uuidString.lowercased())")
        }
        return .noContent(.init())
    }

    func createWebhook(_ input: Operations.CreateWebhook.Input) async throws -> Operations.CreateWebhook.Output {
        let (tenantID, subscriptionID) = try Self.scope(input.path.tenantId, input.path.subscriptionId)
        guard case .json(let body) = input.body else { throw ProblemError.badRequest("expected a JSON body") }
        let name = URL(string: body.url)?.host ?? "webhook"
        let channel = try makeChannel(tenantID: tenantID, subscriptionID: subscriptionID, kind: .webhook, name: name,
                                      url: body.url, secret: body.secret, recipients: nil)
        try await store.insertChannel(channel)
        return .created(.init(body: .json(.init(id: channel.id.uuidString.lowercased(), url: channel.url ?? "",
                                                createdAt: channel.createdAt))))
    }

    func listWebhooks(_ input: Operations.ListWebhooks.Input) async throws -> Operations.ListWebhooks.Output {
        let (tenantID, subscriptionID) = try Self.scope(input.path.tenantId, input.path.subscriptionId)
        let channels = try await store.channels(tenantID: tenantID, subscriptionID: subscriptionID, kind: .webhook)
        return .ok(.init(body: .json(.init(items: channels.map {
            .init(id: $0.id.uuidString.lowercased(), url: $0.url ?? "", createdAt: $0.createdAt)
        }))))
    }

    /// Checks a channel's fields for its type.
    /// - Throws: `ProblemError` 400 naming the field.
    private func makeChannel(tenantID: UUID, subscriptionID: UUID, kind: Channel.Kind, name: String, url: String?,
                             secret: String?, recipients: [String]?) throws -> Channel {
        let name = try Validate.text(name, field: "name", maxLength: 100)
        var checkedURL: String?
        var checkedRecipients: [String] = []
        switch kind {
        case .email:
            guard url == nil else { throw ProblemError.badRequest("url is not used by email channels; give recipients") }
            guard secret == nil else { throw ProblemError.badRequest("secret is not used by email channels") }
            guard let recipients, !recipients.isEmpty else { throw ProblemError.badRequest("recipients are required for email channels") }
            guard recipients.count <= 20 else { throw ProblemError.badRequest("recipients has more than 20 addresses") }
            for (index, address) in recipients.enumerated() where !EmailAddress.isValid(address) {
                throw ProblemError.badRequest("recipients[\(index)] '\(address.prefix(100))' is not an e-mail address (local@domain)")
            }
            guard Set(recipients.map { $0.lowercased() }).count == recipients.count else {
                throw ProblemError.badRequest("recipients has the same address twice")
            }
            guard settings.smtp != nil else {
                throw ProblemError.badRequest("this deployment has no SMTP relay (GANTRY_SMTP_URL), so email channels cannot deliver")
            }
            checkedRecipients = recipients
        case .webhook, .slack, .teams, .cloudevents:
            guard recipients == nil else { throw ProblemError.badRequest("recipients are used by email channels only") }
            guard let url else { throw ProblemError.badRequest("url is required for \(kind.rawValue) channels") }
            checkedURL = try checkURL(url)
            if kind == .webhook && secret == nil { throw ProblemError.badRequest("secret is required for webhook channels") }
            if (kind == .slack || kind == .teams) && secret != nil {
                throw ProblemError.badRequest("secret is not used by \(kind.rawValue) channels (their URL is the secret)")
            }
            if let secret, secret.count < 16 || secret.count > 512 {
                throw ProblemError.badRequest("secret must have 16 to 512 characters")
            }
        }
        // The secret is needed again to sign, so it is sealed (AES-GCM under GANTRY_SECRET_KEY), not hashed. A Slack or
        // Teams URL is the credential: it is sealed as the secret and only its masked form is kept in clear.
        let id = UUID()
        var storedSecret = secret
        if Channel.urlIsSecret(kind), let full = checkedURL {
            storedSecret = full
            checkedURL = Channel.maskedURL(full)
        }
        let sealed = try storedSecret.map { try sealer.get().seal($0, context: Channel.secretContext(id)) }
        return Channel(id: id, tenantID: tenantID, subscriptionID: subscriptionID, kind: kind, name: name, url: checkedURL,
                       secret: sealed, recipients: checkedRecipients, createdAt: Date())
    }

    /// An absolute http(s) URL that passes the SSRF guard; plain http only in the development profile.
    private func checkURL(_ text: String) throws -> String {
        guard text.count <= 2048, let url = URL(string: text), let scheme = url.scheme?.lowercased(),
              ["http", "https"].contains(scheme), let host = url.host, !host.isEmpty, url.user == nil else {
            throw ProblemError.badRequest("url must be an absolute http(s) URL without credentials")
        }
        let hostPort = url.port.map { "\(host):\($0)" } ?? host
        guard CloudProfile.host(ofLoginServer: hostPort) != nil else {
            throw ProblemError.badRequest("url: '\(hostPort.prefix(300))' is not a host name with an optional port")
        }
        // The deployment's one SSRF guard judges literals and what a name resolves to (a public name for a metadata
        // address): loopback only in development, private networks per GANTRY_ALLOW_PRIVATE_REGISTRIES. A name that
        // does not resolve yet is accepted, since every delivery checks again.
        let addressGuard = try AddressGuard.forDeployment(runtime.configuration, privateVariable: AddressGuard.allowPrivateWebhooksVariable)
        do {
            try addressGuard.check(host: host, describing: hostPort, allowUnresolved: true)
        } catch {
            throw ProblemError.badRequest("url: \(error.reason)")
        }
        if scheme == "http" && runtime.configuration.profile != .development {
            throw ProblemError.badRequest("url must use https outside the development profile")
        }
        return text
    }

    static func schema(_ channel: Channel) -> Components.Schemas.Channel {
        .init(id: channel.id.uuidString.lowercased(), _type: .init(rawValue: channel.kind.rawValue) ?? .webhook,
              name: channel.name, url: channel.url, recipients: channel.kind == .email ? channel.recipients : nil,
              signed: channel.signs, createdAt: channel.createdAt)
    }

    // MARK: Rules

    func createRule(_ input: Operations.CreateRule.Input) async throws -> Operations.CreateRule.Output {
        let (tenantID, subscriptionID) = try Self.scope(input.path.tenantId, input.path.subscriptionId)
        guard case .json(let body) = input.body else { throw ProblemError.badRequest("expected a JSON body") }
        let name = try Validate.text(body.name, field: "name", maxLength: 100)
        guard let kind = AlertKind(rawValue: body.kind.rawValue) else { throw ProblemError.badRequest("kind is not supported") }
        let severity = body.minSeverity.flatMap { FindingSeverity(name: $0.rawValue) }
        if severity != nil && !kind.carriesFindings {
            throw ProblemError.badRequest("minSeverity applies to imageUnhealthy and newFindings rules only")
        }
        if let failures = body.minConsecutiveFailures {
            guard kind == .scansFailing else { throw ProblemError.badRequest("minConsecutiveFailures applies to scansFailing rules only") }
            guard (1...1000).contains(failures) else { throw ProblemError.badRequest("minConsecutiveFailures must be 1 to 1000") }
        }
        guard (1...20).contains(body.channelIds.count) else { throw ProblemError.badRequest("channelIds must name 1 to 20 channels") }
        var channelIDs: [UUID] = []
        for (index, text) in body.channelIds.enumerated() {
            let id = try Validate.uuid(text, field: "channelIds[\(index)]")
            guard try await store.channel(tenantID: tenantID, subscriptionID: subscriptionID, id: id) != nil else {
                throw ProblemError.badRequest("channelIds[\(index)]: no channel \(id.uuidString.lowercased()) in subscription \(subscriptionID.uuidString.lowercased())")
            }
            if !channelIDs.contains(id) { channelIDs.append(id) }
        }
        let rule = AlertRule(id: UUID(), name: name, kind: kind, minSeverity: severity,
                             minConsecutiveFailures: kind == .scansFailing
                                 ? body.minConsecutiveFailures ?? AlertRule.defaultConsecutiveFailures : nil,
                             channelIDs: channelIDs, createdAt: Date())
        try await store.insertRule(rule, tenantID: tenantID, subscriptionID: subscriptionID)
        return .created(.init(body: .json(Self.schema(rule))))
    }

    func listRules(_ input: Operations.ListRules.Input) async throws -> Operations.ListRules.Output {
        let (tenantID, subscriptionID) = try Self.scope(input.path.tenantId, input.path.subscriptionId)
        let rules = try await store.rules(tenantID: tenantID, subscriptionID: subscriptionID)
        return .ok(.init(body: .json(.init(items: rules.map(Self.schema)))))
    }

    func getRule(_ input: Operations.GetRule.Input) async throws -> Operations.GetRule.Output {
        let (tenantID, subscriptionID) = try Self.scope(input.path.tenantId, input.path.subscriptionId)
        let id = try Validate.uuid(input.path.ruleId, field: "ruleId")
        guard let rule = try await store.rules(tenantID: tenantID, subscriptionID: subscriptionID, id: id).first else {
            throw ProblemError.notFound("no rule \(id.uuidString.lowercased()) in subscription \(subscriptionID.uuidString.lowercased())")
        }
        return .ok(.init(body: .json(Self.schema(rule))))
    }

    func deleteRule(_ input: Operations.DeleteRule.Input) async throws -> Operations.DeleteRule.Output {
        let (tenantID, subscriptionID) = try Self.scope(input.path.tenantId, input.path.subscriptionId)
        let id = try Validate.uuid(input.path.ruleId, field: "ruleId")
        guard try await store.deleteRule(tenantID: tenantID, subscriptionID: subscriptionID, id: id) else {
            throw ProblemError.notFound("no rule \(id.uuidString.lowercased()) in subscription \(subscriptionID.uuidString.lowercased())")
        }
        return .noContent(.init())
    }

    static func schema(_ rule: AlertRule) -> Components.Schemas.Rule {
        .init(id: rule.id.uuidString.lowercased(), name: rule.name, kind: .init(rawValue: rule.kind.rawValue) ?? .imageUnhealthy,
              minSeverity: rule.minSeverity.flatMap { .init(rawValue: $0.name) },
              minConsecutiveFailures: rule.minConsecutiveFailures,
              channelIds: rule.channelIDs.map { $0.uuidString.lowercased() }, createdAt: rule.createdAt)
    }

    // MARK: Logs

    func listAlerts(_ input: Operations.ListAlerts.Input) async throws -> Operations.ListAlerts.Output {
        let (tenantID, subscriptionID) = try Self.scope(input.path.tenantId, input.path.subscriptionId)
        let records = try await store.alerts(tenantID: tenantID, subscriptionID: subscriptionID,
                                             limit: try Self.limit(input.query.limit))
        return .ok(.init(body: .json(.init(items: records.map {
            .init(messageId: $0.messageID, kind: $0.kind, outcome: .init(rawValue: $0.outcome) ?? .routed, reason: $0.reason,
                  deliveries: $0.deliveries, imageDigest: $0.imageDigest, repositoryName: $0.repository,
                  registryHost: $0.registryHost, receivedAt: $0.receivedAt)
        }))))
    }

    func listDeliveries(_ input: Operations.ListDeliveries.Input) async throws -> Operations.ListDeliveries.Output {
        let (tenantID, subscriptionID) = try Self.scope(input.path.tenantId, input.path.subscriptionId)
        let channelID = try input.query.channelId.map { try Validate.uuid($0, field: "channelId") }
        let records = try await store.deliveries(tenantID: tenantID, subscriptionID: subscriptionID,
                                                 status: input.query.status?.rawValue, channelID: channelID,
                                                 limit: try Self.limit(input.query.limit))
        return .ok(.init(body: .json(.init(items: records.map(Self.schema)))))
    }

    func getDelivery(_ input: Operations.GetDelivery.Input) async throws -> Operations.GetDelivery.Output {
        let (tenantID, subscriptionID) = try Self.scope(input.path.tenantId, input.path.subscriptionId)
        let id = try Validate.uuid(input.path.deliveryId, field: "deliveryId")
        guard let record = try await store.deliveries(tenantID: tenantID, subscriptionID: subscriptionID, status: nil,
                                                      channelID: nil, id: id, limit: 1).first else {
            throw ProblemError.notFound("no delivery \(id.uuidString.lowercased()) in subscription \(subscriptionID.uuidString.lowercased())")
        }
        let attempts = try await store.attempts(tenantID: tenantID, subscriptionID: subscriptionID, deliveryID: id)
        return .ok(.init(body: .json(.init(delivery: Self.schema(record), attempts: attempts.map {
            .init(attempt: $0.attempt, startedAt: $0.startedAt, durationMs: $0.durationMs,
                  outcome: .init(rawValue: $0.outcome) ?? .failed, statusCode: $0.statusCode, error: $0.error)
        }))))
    }

    func redeliver(_ input: Operations.Redeliver.Input) async throws -> Operations.Redeliver.Output {
        let (tenantID, subscriptionID) = try Self.scope(input.path.tenantId, input.path.subscriptionId)
        let id = try Validate.uuid(input.path.deliveryId, field: "deliveryId")
        guard try await store.redeliver(tenantID: tenantID, subscriptionID: subscriptionID, id: id,
                                        retryWindow: settings.retryWindow),
              let record = try await store.deliveries(tenantID: tenantID, subscriptionID: subscriptionID, status: nil,
                                                      channelID: nil, id: id, limit: 1).first else {
            throw ProblemError.notFound("no delivery \(id.uuidString.lowercased()) in subscription \(subscriptionID.uuidString.lowercased())")
        }
        return .accepted(.init(body: .json(Self.schema(record))))
    }

    static func schema(_ record: DeliveryRecord) -> Components.Schemas.Delivery {
        .init(id: record.id.uuidString.lowercased(), channelId: record.channelID.uuidString.lowercased(),
              channelType: .init(rawValue: record.channelKind.rawValue) ?? .webhook, alertId: record.alertID, url: record.target,
              status: .init(rawValue: record.status) ?? .pending, attempts: record.attempts,
              lastStatusCode: record.lastStatusCode, lastError: record.lastError, createdAt: record.createdAt,
              lastAttemptAt: record.lastAttemptAt, nextAttemptAt: record.nextAttemptAt, giveUpAt: record.giveUpAt,
              deliveredAt: record.deliveredAt)
    }

    // MARK: Alerts

    func raiseAlert(_ input: Operations.RaiseAlert.Input) async throws -> Operations.RaiseAlert.Output {
        guard case .json(let alert) = input.body else { throw ProblemError.badRequest("expected a JSON body") }
        let deliveries = try await router.route(try ValidatedAlert(alert))
        return .accepted(.init(body: .json(.init(deliveries: deliveries))))
    }

    // MARK: Helpers

    private static func scope(_ tenant: String, _ subscription: String) throws -> (UUID, UUID) {
        (try Validate.uuid(tenant, field: "tenantId"), try Validate.uuid(subscription, field: "subscriptionId"))
    }

    private static func limit(_ value: Int?) throws -> Int {
        guard let value else { return 100 }
        guard (1...500).contains(value) else { throw ProblemError.badRequest("limit must be 1 to 500") }
        return value
    }
}
