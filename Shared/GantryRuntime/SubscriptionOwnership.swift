import AsyncHTTPClient
import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1

/// Which tenant a subscription belongs to, as discovery states it (`GET /internal/v1/subscriptions/{subscriptionId}`,
/// Shared/Contracts/specs/discovery.yaml), cached (issue 6, item 6: a subscription of tenant B named under tenant A's
/// path is 404, and nothing is created).
///
/// A subscription's owner never changes once it is created, so a found owner is kept for `positiveTTL` (5 min);
/// an unknown subscription for `negativeTTL` (3 s), since it may be created any moment. The cache holds at most
/// `capacity` entries (`ExpiringCache`: expired ones are dropped first, then the half that would expire soonest). Concurrent misses for one ID share one lookup.
/// When discovery cannot be reached, or answers anything but 200 or 404, the check fails closed with 503.
public final class SubscriptionOwnership: Sendable {
    /// The part of discovery's `SubscriptionOwner` schema the check needs.
    private struct OwnerDocument: Decodable {
        var subscriptionId: String
        var tenantId: String
    }

    private let discoveryURL: URL
    private let tokens: ServiceTokens
    private let httpClient: HTTPClient
    private let logger: Logger
    private let timeout: Duration
    /// Owners by subscription; nil for "no such subscription".
    private let owners: ExpiringCache<UUID, UUID?>

    /// - Parameters:
    ///   - discoveryURL: discovery's base URL (`GANTRY_DISCOVERY_URL`).
    ///   - tokens: this service's token signer (the call carries a service token addressed to `discovery`).
    ///   - positiveTTL: how long a found owner is kept. - negativeTTL: how long "no such subscription" is kept.
    ///   - capacity: the most cached subscriptions. - timeout: per lookup.
    public init(discoveryURL: URL, tokens: ServiceTokens, httpClient: HTTPClient = .shared, logger: Logger,
                positiveTTL: Duration = .seconds(300), negativeTTL: Duration = .seconds(3), capacity: Int = 10_000,
                timeout: Duration = .seconds(5)) {
        self.discoveryURL = discoveryURL
        self.tokens = tokens
        self.httpClient = httpClient
        self.logger = logger
        self.timeout = timeout
        owners = ExpiringCache(capacity: capacity) { $0 == nil ? negativeTTL : positiveTTL }
    }

    /// The check for a service: discovery at `configuration.url(of: .discovery)`, called with the runtime's tokens.
    public convenience init(runtime: ServiceRuntime) {
        self.init(discoveryURL: runtime.configuration.url(of: .discovery), tokens: runtime.tokens,
                  httpClient: runtime.httpClient, logger: runtime.logger)
    }

    /// The tenant owning `subscriptionID`; nil when discovery knows no such subscription.
    /// - Throws: `ProblemError` 503 when discovery cannot be reached or answers unexpectedly (fail closed).
    public func owner(of subscriptionID: UUID) async throws -> UUID? {
        try await owners.value(for: subscriptionID) { [discoveryURL, tokens, httpClient, logger, timeout] in
            try await Self.lookup(subscriptionID, discoveryURL: discoveryURL, tokens: tokens, httpClient: httpClient,
                                  logger: logger, timeout: timeout)
        }
    }

    /// Checks that `subscriptionID` belongs to `tenantID`.
    /// - Throws: `ProblemError` 404 "subscription X not found in tenant Y" when it does not (or does not exist);
    ///   503 when discovery cannot be reached.
    public func check(tenantID: UUID, subscriptionID: UUID) async throws {
        guard try await owner(of: subscriptionID) == tenantID else {
            throw ProblemError.notFound("subscription \(subscriptionID.uuidString.lowercased()) not found in tenant \(tenantID.uuidString.lowercased())")
        }
    }

    /// Checks the `tenantId` and `subscriptionId` path parameters of a matched route (`UserAuthMiddleware`).
    /// - Throws: `ProblemError` 400 naming a parameter that is not a UUID; otherwise as `check(tenantID:subscriptionID:)`.
    public func check(tenant: String, subscription: String) async throws {
        let tenantID = try Validate.uuid(tenant, field: "tenantId")
        let subscriptionID = try Validate.uuid(subscription, field: "subscriptionId")
        try await check(tenantID: tenantID, subscriptionID: subscriptionID)
    }

    private static func lookup(_ subscriptionID: UUID, discoveryURL: URL, tokens: ServiceTokens, httpClient: HTTPClient,
                               logger: Logger, timeout: Duration) async throws -> UUID? {
        let id = subscriptionID.uuidString.lowercased()
        let url = discoveryURL.appendingPathComponent("internal/v1/subscriptions/\(id)")
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = .GET
        let trace = RequestTrace.current?.child() ?? RequestTrace.fresh()
        request.headers.add(name: RequestTrace.requestIDField.rawName, value: trace.requestID)
        request.headers.add(name: RequestTrace.traceparentField.rawName, value: trace.traceparent)
        let unavailable = ProblemError(.serviceUnavailable,
                                       "cannot check that subscription \(id) belongs to the tenant: discovery is not available; try again later")
        let status: HTTPResponseStatus
        let body: ByteBuffer
        do {
            request.headers.add(name: "Authorization", value: "Bearer \(try await tokens.token(for: GantryServiceName.discovery.rawValue))")
            let response = try await httpClient.execute(request, timeout: TimeAmount(timeout))
            status = response.status
            body = try await response.body.collect(upTo: 64 << 10)
        } catch {
            logger.warning("subscription ownership lookup failed", metadata: ["subscriptionId": "\(id)", "error": "\(error)"])
            throw unavailable
        }
        switch status {
        case .ok:
            guard let document = try? JSONDecoder().decode(OwnerDocument.self, from: Data(body.readableBytesView)),
                  document.subscriptionId.lowercased() == id, let owner = UUID(uuidString: document.tenantId) else {
                logger.warning("discovery's subscription owner answer is malformed", metadata: ["subscriptionId": "\(id)"])
                throw unavailable
            }
            return owner
        case .notFound:
            return nil
        default:
            logger.warning("discovery answered the subscription ownership lookup unexpectedly",
                           metadata: ["subscriptionId": "\(id)", "status": "\(status.code)"])
            throw unavailable
        }
    }
}

