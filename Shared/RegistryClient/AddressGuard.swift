import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The SSRF guard for outbound calls to user-supplied URLs (registries, image imports): refuses a URL
/// whose scheme is not `http`/`https`, or whose host RESOLVES (getaddrinfo(3), every address returned)
/// to a place a tenant must not make the service reach:
///
/// | class | ranges | refused |
/// |---|---|---|
/// | `linkLocal` | 169.254.0.0/16 (cloud metadata 169.254.169.254), fe80::/10 | always |
/// | `unspecified`, `multicast`, `reserved` | 0.0.0.0/8, ::, 224.0.0.0/4, ff00::/8, 240.0.0.0/4 | always |
/// | `loopback` | 127.0.0.0/8, ::1 | unless `allowLoopback` (development profile) |
/// | `privateNetwork` | 10/8, 172.16/12, 192.168/16, 100.64/10 (CGNAT, Alibaba metadata), fc00::/7 (AWS IPv6 metadata) | unless `allowPrivate` |
///
/// IPv4-mapped (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2) and NAT64 (`64:ff9b::/96`, RFC 6052) addresses are
/// judged by the IPv4 address inside. Callers check the start URL and every redirect hop (`RegistryClient`
/// does when given a guard).
///
/// DNS rebinding: `check` alone resolves the name, and a client that resolves it again to connect can be sent
/// elsewhere by a second, different answer. `approve` returns the addresses it checked, and `PinnedHTTPClients`
/// connects to exactly one of them (AsyncHTTPClient `dnsOverride`), so the connection never resolves the name.
///
/// Usage: `try AddressGuard(allowLoopback: profile == .development).check(url)`; services build theirs with
/// `AddressGuard.forDeployment(_:)` (GantryRuntime).
public struct AddressGuard: Sendable, Hashable {
    /// Accept loopback addresses (the development profile's local registry).
    public var allowLoopback: Bool
    /// Accept private-network addresses (a deployment whose profile reaches registries on its own network).
    public var allowPrivate: Bool
    /// The setting that would allow private networks, named when one is refused (nil: none named).
    public var privateSetting: String?
    /// Resolves a host name (no brackets) to its addresses (4 or 16 bytes each), in the order a client would try
    /// them. Only tests replace it (to answer differently on each call, as a rebinding DNS server would);
    /// nil means getaddrinfo(3) (`AddressGuard.resolve`).
    public var resolver: (@Sendable (String) -> [[UInt8]])?

    public init(allowLoopback: Bool = false, allowPrivate: Bool = false, resolver: (@Sendable (String) -> [[UInt8]])? = nil) {
        self.allowLoopback = allowLoopback
        self.allowPrivate = allowPrivate
        self.resolver = resolver
    }

    /// Guards are equal when they refuse the same classes (the resolver is not compared).
    public static func == (lhs: AddressGuard, rhs: AddressGuard) -> Bool {
        lhs.allowLoopback == rhs.allowLoopback && lhs.allowPrivate == rhs.allowPrivate
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(allowLoopback)
        hasher.combine(allowPrivate)
    }

    /// A URL's host and the addresses the guard checked for it and found allowed, for connecting to exactly those.
    public struct Approval: Sendable, Equatable {
        /// The host as the URL names it (brackets removed from an IPv6 literal).
        public var host: String
        /// The approved addresses as text (`203.0.113.7`, `2001:db8::1`), in resolution order; never empty.
        public var addresses: [String]
    }

    /// Checks `url` like `check(_:)` and returns what it approved, so that the connection can be pinned to it.
    /// - Throws: `AddressRefusal` as `check(_:)` does (an unresolved name is refused).
    public func approve(_ url: URL) throws(AddressRefusal) -> Approval {
        let host = try checkedHost(of: url)
        let addresses = try check(host: host, port: url.port, describing: url.absoluteString, allowUnresolved: false)
        return Approval(host: Self.unbracketed(host), addresses: addresses.map(Self.text))
    }

    /// `approve(_:)` for a URL string.
    public func approve(_ urlString: String) throws(AddressRefusal) -> Approval {
        guard let url = URL(string: urlString) else {
            throw AddressRefusal(url: String(urlString.prefix(300)), reason: "it is not a URL")
        }
        return try approve(url)
    }

    /// What kind of place an address is.
    public enum AddressClass: String, Sendable, Hashable {
        case global, loopback, linkLocal, privateNetwork, unspecified, multicast, reserved
    }

    /// Checks `url`: scheme, then every address its host resolves to.
    /// - Throws: `AddressRefusal` naming the URL, the address and the rule.
    public func check(_ url: URL) throws(AddressRefusal) {
        _ = try approve(url)
    }

    private func checkedHost(of url: URL) throws(AddressRefusal) -> String {
        guard let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https" else {
            throw AddressRefusal(url: url.absoluteString, reason: "only http and https URLs are allowed, not '\(url.scheme ?? "")'")
        }
        guard let host = url.host, !host.isEmpty else {
            throw AddressRefusal(url: url.absoluteString, reason: "the URL has no host")
        }
        return host
    }

    /// Checks a URL string; see `check(_:)`.
    public func check(_ urlString: String) throws(AddressRefusal) {
        guard let url = URL(string: urlString) else {
            throw AddressRefusal(url: String(urlString.prefix(300)), reason: "it is not a URL")
        }
        try check(url)
    }

    /// Checks a host name or address literal (brackets allowed for IPv6).
    /// - Parameter allowUnresolved: accept a name that does not resolve now (registration of a registry whose
    ///   DNS is not yet visible from here: every later connection is checked again).
    /// - Returns: every address the host resolved to (all allowed); empty only for an unresolved, allowed name.
    /// - Throws: `AddressRefusal` when any address it resolves to is refused, or it does not resolve and
    ///   `allowUnresolved` is false.
    @discardableResult
    public func check(host: String, port: Int? = nil, describing: String? = nil,
                      allowUnresolved: Bool = false) throws(AddressRefusal) -> [[UInt8]] {
        let what = describing ?? host
        let addresses = resolver.map { $0(Self.unbracketed(host)) } ?? Self.resolve(host)
        guard !addresses.isEmpty else {
            if allowUnresolved { return [] }
            throw AddressRefusal(url: what, reason: "the host '\(host.prefix(255))' does not resolve")
        }
        for address in addresses {
            let kind = Self.classify(address)
            if let reason = refusal(kind) {
                throw AddressRefusal(url: what, reason: "'\(host.prefix(255))' resolves to \(Self.text(address)), \(reason)")
            }
        }
        return addresses
    }

    static func unbracketed(_ host: String) -> String {
        host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
    }

    /// Why an address class is refused, or nil when it is allowed.
    public func refusal(_ kind: AddressClass) -> String? {
        switch kind {
        case .global: nil
        case .loopback: allowLoopback ? nil : "a loopback address (accepted only in the development profile)"
        case .privateNetwork:
            allowPrivate ? nil : "a private-network address (not allowed by this deployment"
                + (privateSetting.map { "; \($0)=true allows private networks)" } ?? ")")
        case .linkLocal: "a link-local address (cloud metadata endpoints live there)"
        case .unspecified: "the unspecified address"
        case .multicast: "a multicast address"
        case .reserved: "a reserved address"
        }
    }

    /// Every address (4 or 16 bytes) `host` resolves to; a literal resolves to itself. Empty when it does not resolve.
    public static func resolve(_ host: String) -> [[UInt8]] {
        let name = unbracketed(host)
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(name, nil, &hints, &result) == 0, let first = result else { return [] }
        defer { freeaddrinfo(first) }
        var addresses: [[UInt8]] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let entry = cursor {
            if let sockaddr = entry.pointee.ai_addr {
                switch entry.pointee.ai_family {
                case AF_INET:
                    var address = sockaddr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                    addresses.append(withUnsafeBytes(of: &address) { Array($0) })
                case AF_INET6:
                    var address = sockaddr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                    addresses.append(withUnsafeBytes(of: &address) { Array($0) })
                default:
                    break
                }
            }
            cursor = entry.pointee.ai_next
        }
        return addresses
    }

    /// Classifies an IPv4 (4 bytes) or IPv6 (16 bytes) address (RFC 6890 special-purpose registries).
    public static func classify(_ address: [UInt8]) -> AddressClass {
        if address.count == 16 {
            let prefix = Array(address[0..<12])
            // IPv4-mapped ::ffff:0:0/96 and NAT64 64:ff9b::/96 carry an IPv4 address: judge that one.
            if prefix == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] || prefix == [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0] {
                return classify(Array(address[12...]))
            }
            if address.allSatisfy({ $0 == 0 }) { return .unspecified }
            if address == [UInt8](repeating: 0, count: 15) + [1] { return .loopback }
            if address[0] == 0xfe, address[1] & 0xc0 == 0x80 { return .linkLocal }
            if address[0] & 0xfe == 0xfc { return .privateNetwork }
            if address[0] == 0xff { return .multicast }
            // IPv4-compatible ::a.b.c.d (deprecated) is still routed as IPv4 by some stacks.
            if address[0..<12].allSatisfy({ $0 == 0 }) { return classify(Array(address[12...])) }
            return .global
        }
        guard address.count == 4 else { return .reserved }
        switch (address[0], address[1]) {
        case (0, _): return .unspecified
        case (127, _): return .loopback
        case (169, 254): return .linkLocal
        case (10, _), (192, 168): return .privateNetwork
        case (172, let second) where (16...31).contains(second): return .privateNetwork
        case (100, let second) where (64...127).contains(second): return .privateNetwork
        case (224...239, _): return .multicast
        case (240...255, _): return .reserved
        default: return .global
        }
    }

    /// An address as text: dotted quad for 4 bytes, RFC 5952 form for 16.
    public static func text(_ address: [UInt8]) -> String {
        if address.count == 4 { return address.map(String.init).joined(separator: ".") }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        var storage = in6_addr()
        withUnsafeMutableBytes(of: &storage) { $0.copyBytes(from: address) }
        guard inet_ntop(AF_INET6, &storage, &buffer, socklen_t(buffer.count)) != nil else { return "an IPv6 address" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// A URL the `AddressGuard` refused: `url` as given, `reason` says which address and which rule.
public struct AddressRefusal: Error, CustomStringConvertible, Sendable, Equatable {
    public let url: String
    public let reason: String

    public init(url: String, reason: String) {
        self.url = url
        self.reason = reason
    }

    public var description: String { "refused to connect to \(url): \(reason)" }
}
