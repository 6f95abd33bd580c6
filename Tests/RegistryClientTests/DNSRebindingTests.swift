import AsyncHTTPClient
import Foundation
import GantryTesting
import NIOCore
import RegistryClient
import Synchronization
import Testing

/// DNS rebinding (issue 6, "SSRF guard ... at every connection"): the connection goes to the address the guard
/// approved, never to what the name resolves to afterwards. No DNS server can be run here, so the guard's resolver
/// hook plays one whose answers change between calls; names under `.invalid` (RFC 6761 §6.4) do not resolve
/// through the system at all, so a request that reaches the registry under such a name can only have used the
/// guard's answer.
@Suite(.enabled(if: RegistryTestSupport.liveTestsEnabled, "needs docker-registry"))
struct DNSRebindingTests {
    /// A resolver whose answer changes: `answers[i]` for call i, the last one for every later call.
    final class RebindingResolver: Sendable {
        let answers: [[[UInt8]]]
        let calls = Mutex<[String]>([])

        init(_ answers: [[UInt8]]...) { self.answers = answers }

        var hook: @Sendable (String) -> [[UInt8]] {
            { host in
                let index = self.calls.withLock { calls in
                    calls.append(host)
                    return calls.count - 1
                }
                return self.answers[min(index, self.answers.count - 1)]
            }
        }

        var callCount: Int { calls.withLock { $0.count } }
    }

    static let loopback: [UInt8] = [127, 0, 0, 1]
    static let metadata: [UInt8] = [169, 254, 169, 254]

    static func pinned(_ resolver: RebindingResolver, maxClients: Int = 64) -> PinnedHTTPClients {
        PinnedHTTPClients(addressGuard: AddressGuard(allowLoopback: true, resolver: resolver.hook),
                          configuration: .init(redirectConfiguration: .disallow, timeout: .init(connect: .seconds(5))),
                          maxClients: maxClients)
    }

    static func endpoint(host: String, _ registry: TestRegistry) -> RegistryEndpoint {
        RegistryEndpoint(baseURL: URL(string: "http://\(host):\(registry.port)")!, credentials: nil)
    }

    @Test("the connection goes to the address the guard approved; the next answer (metadata address) is refused, never connected to")
    func connectionUsesTheApprovedAddress() async throws {
        let registry = try await TestRegistry.start()
        defer { registry.stop() }
        let resolver = RebindingResolver([Self.loopback], [Self.metadata])
        let clients = Self.pinned(resolver)
        let client = RegistryClient(pinnedClients: clients, logger: RegistryTestSupport.logger)
        let endpoint = Self.endpoint(host: "registry.rebinding.invalid", registry)
        do {
            // Reaches the registry although the system cannot resolve the name: only the approved 127.0.0.1 was used.
            try await client.ping(endpoint)
            #expect(resolver.callCount == 1)
            #expect(clients.count == 1)
            // The name now answers the metadata address: the guard refuses before any connection is made.
            let refusal = await #expect(throws: AddressRefusal.self) { try await client.ping(endpoint) }
            #expect(refusal?.reason.contains("169.254.169.254") == true, "\(String(describing: refusal))")
            #expect(resolver.callCount == 2)
            #expect(clients.count == 1, "no client is made for a refused answer")
        } catch {
            try? await clients.shutdown()
            throw error
        }
        try await clients.shutdown()
    }

    @Test("without pinning the connection resolves the name again (the gap this closes): the same approved name fails to connect")
    func unpinnedClientResolvesAgain() async throws {
        let registry = try await TestRegistry.start()
        defer { registry.stop() }
        let resolver = RebindingResolver([Self.loopback])
        let http = HTTPClient(eventLoopGroupProvider: .singleton,
                              configuration: .init(redirectConfiguration: .disallow, timeout: .init(connect: .seconds(5))))
        let client = RegistryClient(httpClient: http, logger: RegistryTestSupport.logger,
                                    addressGuard: AddressGuard(allowLoopback: true, resolver: resolver.hook))
        let outcome: Result<Void, any Error>
        do {
            try await client.ping(Self.endpoint(host: "registry.rebinding.invalid", registry))
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        try await http.shutdown()
        // The guard approved 127.0.0.1, but AsyncHTTPClient asked the system resolver, which knows no such name.
        #expect(resolver.callCount == 1)
        guard case .failure(let error) = outcome, case RegistryError.transport = error else {
            Issue.record("expected a transport error, got \(outcome)")
            return
        }
    }

    @Test("the connection ignores what the system resolver says: 'localhost' approved as 127.0.0.2 connects there, not to 127.0.0.1")
    func systemAnswerIsNotUsed() async throws {
        let registry = try await TestRegistry.start()  // listens on 127.0.0.1 only
        defer { registry.stop() }
        let resolver = RebindingResolver([[127, 0, 0, 2]])
        let clients = Self.pinned(resolver)
        let client = RegistryClient(pinnedClients: clients, logger: RegistryTestSupport.logger)
        let outcome: Result<Void, any Error>
        do {
            try await client.ping(Self.endpoint(host: "localhost", registry))
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        try await clients.shutdown()
        guard case .failure(let error) = outcome, case RegistryError.transport = error else {
            Issue.record("the request must go to 127.0.0.2, where nothing listens; got \(outcome)")
            return
        }
        // And the same name pinned to 127.0.0.1 reaches the registry.
        let right = Self.pinned(RebindingResolver([Self.loopback]))
        do {
            try await RegistryClient(pinnedClients: right, logger: RegistryTestSupport.logger)
                .ping(Self.endpoint(host: "localhost", registry))
        } catch {
            try? await right.shutdown()
            throw error
        }
        try await right.shutdown()
    }

    @Test("one forbidden address among the answers refuses the name; clients are reused per host and address, bounded")
    func refusalAndReuse() async throws {
        let registry = try await TestRegistry.start()
        defer { registry.stop() }
        let mixed = Self.pinned(RebindingResolver([Self.loopback, Self.metadata]))
        #expect(throws: AddressRefusal.self) { _ = try mixed.client(for: "http://mixed.rebinding.invalid:\(registry.port)/v2/") }
        #expect(mixed.count == 0)
        try await mixed.shutdown()

        let clients = Self.pinned(RebindingResolver([Self.loopback]), maxClients: 2)
        let client = RegistryClient(pinnedClients: clients, logger: RegistryTestSupport.logger)
        do {
            for _ in 0..<3 { try await client.ping(Self.endpoint(host: "a.rebinding.invalid", registry)) }
            #expect(clients.count == 1)
            try await client.ping(Self.endpoint(host: "b.rebinding.invalid", registry))
            try await client.ping(Self.endpoint(host: "c.rebinding.invalid", registry))
            #expect(clients.count == 2, "the least recently used client is retired beyond maxClients")
        } catch {
            try? await clients.shutdown()
            throw error
        }
        try await clients.shutdown()
        #expect(throws: PinnedHTTPClients.ShutDown.self) { _ = try clients.client(for: "http://a.rebinding.invalid:\(registry.port)/") }
    }
}
