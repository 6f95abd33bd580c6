import AsyncHTTPClient
import Foundation
import Synchronization

/// HTTP clients whose connections go only to addresses an `AddressGuard` approved: the defence against DNS
/// rebinding (a name that answers a public address to the check and 169.254.169.254 to the connection).
///
/// `client(for:)` runs `AddressGuard.approve` on the URL and returns an `HTTPClient` whose
/// `Configuration.dnsOverride` maps the URL's host to one approved address, so AsyncHTTPClient connects to that
/// address without resolving the name again; the `Host` header and the TLS server name (SNI, RFC 6066 §3) and
/// certificate check stay the original name. Clients are kept per (host, address) and reused; an existing
/// client for any approved address is preferred, so round-robin DNS does not multiply them.
///
/// At most `maxClients` are kept: the least recently used one beyond that is retired and shut down
/// `retirementGrace` later (a response it returned may still be streaming). `shutdown()` shuts every client down;
/// the owner must call it (GantryRuntime's `PinnedHTTPClientsService` does on service shutdown).
public final class PinnedHTTPClients: Sendable {
    /// The guard every URL passes before a client is handed out.
    public let addressGuard: AddressGuard
    private let configuration: HTTPClient.Configuration
    private let maxClients: Int
    private let retirementGrace: Duration
    private let state = Mutex(State())

    private struct Key: Hashable {
        var host: String
        var address: String
    }

    private struct State {
        var clients: [Key: (client: HTTPClient, lastUse: UInt64)] = [:]
        var retired: [(client: HTTPClient, at: ContinuousClock.Instant)] = []
        var uses: UInt64 = 0
        var isShutDown = false
    }

    /// The pool was shut down; no more clients are handed out.
    public struct ShutDown: Error, CustomStringConvertible {
        public var description: String { "the pinned HTTP clients were shut down" }
    }

    /// - Parameters:
    ///   - addressGuard: checks every URL (scheme, every resolved address).
    ///   - configuration: the configuration of every client (timeouts, redirects; its `dnsOverride` is replaced).
    ///     Give `redirectConfiguration: .disallow`: a redirect followed inside AsyncHTTPClient would skip the guard.
    ///   - maxClients: clients kept at once (default 64).
    ///   - retirementGrace: how long a retired client lives on before it is shut down (default 30 minutes).
    public init(addressGuard: AddressGuard, configuration: HTTPClient.Configuration, maxClients: Int = 64,
                retirementGrace: Duration = .seconds(1800)) {
        self.addressGuard = addressGuard
        self.configuration = configuration
        self.maxClients = max(1, maxClients)
        self.retirementGrace = retirementGrace
    }

    /// Checks `url` with the guard and returns the client pinned to an address it approved.
    /// - Throws: `AddressRefusal` when the guard refuses the URL (or its host does not resolve); `ShutDown`.
    public func client(for url: String) throws -> HTTPClient {
        let approval = try addressGuard.approve(url)
        return try client(for: approval)
    }

    /// The client pinned to one of `approval`'s addresses (the first, unless one already has a client).
    /// - Throws: `ShutDown`.
    public func client(for approval: AddressGuard.Approval) throws -> HTTPClient {
        let (client, expired) = try state.withLock { state throws(ShutDown) -> (HTTPClient, [HTTPClient]) in
            guard !state.isShutDown else { throw ShutDown() }
            state.uses += 1
            let now = ContinuousClock.now
            let expired = state.retired.filter { now - $0.at >= retirementGrace }.map(\.client)
            state.retired.removeAll { now - $0.at >= retirementGrace }
            for address in approval.addresses {
                let key = Key(host: approval.host, address: address)
                if let existing = state.clients[key] {
                    state.clients[key]?.lastUse = state.uses
                    return (existing.client, expired)
                }
            }
            var pinned = configuration
            pinned.dnsOverride = [approval.host: approval.addresses[0]]
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: pinned)
            state.clients[Key(host: approval.host, address: approval.addresses[0])] = (client, state.uses)
            if state.clients.count > maxClients, let oldest = state.clients.min(by: { $0.value.lastUse < $1.value.lastUse }) {
                state.clients[oldest.key] = nil
                state.retired.append((oldest.value.client, now))
            }
            return (client, expired)
        }
        if !expired.isEmpty {
            Task { for client in expired { try? await client.shutdown() } }
        }
        return client
    }

    /// How many clients are kept (not counting retired ones).
    public var count: Int { state.withLock { $0.clients.count } }

    /// Shuts every client down, waiting for each; later `client(for:)` calls throw `ShutDown`.
    public func shutdown() async throws {
        let clients = state.withLock { state -> [HTTPClient] in
            state.isShutDown = true
            let all = state.clients.values.map(\.client) + state.retired.map(\.client)
            state.clients = [:]
            state.retired = []
            return all
        }
        var failure: (any Error)?
        for client in clients {
            do { try await client.shutdown() } catch { failure = error }
        }
        if let failure { throw failure }
    }
}
