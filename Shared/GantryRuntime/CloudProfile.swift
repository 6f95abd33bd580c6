import Foundation
import GantryModel
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a cloud type fixes for a deployment (PRODUCT.md, "The six services"; ARCHITECTURE.md, "Configuration"):
/// accepted registry host suffixes, the price of one scanned image and its currency, feed sources and features.
public struct CloudProfile: Sendable, Equatable {
    public var cloudType: CloudType
    /// Registry login-server suffixes accepted in production; empty means any public host.
    public var acceptedRegistrySuffixes: [String]
    /// Price of one billable image scan, in `currency`, as a decimal string (no binary floating point in money).
    public var unitPrice: String
    /// ISO 4217 currency code.
    public var currency: String
    /// Base URL of the Alpine secdb (https://secdb.alpinelinux.org/ layout); nil where feeds come only from an imported bundle.
    public var alpineSecDBURL: URL?
    /// True where the deployment must work fully offline from an imported feed bundle (sovereign clouds).
    public var offlineFeeds: Bool

    /// The built-in profile of a cloud type. Prices follow the seed product's per-image charge.
    public static func profile(for cloudType: CloudType) -> CloudProfile {
        switch cloudType {
        case .commercial:
            CloudProfile(cloudType: .commercial, acceptedRegistrySuffixes: [], unitPrice: "0.29", currency: "USD",
                         alpineSecDBURL: URL(string: "https://secdb.alpinelinux.org/"), offlineFeeds: false)
        case .government:
            CloudProfile(cloudType: .government, acceptedRegistrySuffixes: [".azurecr.us", ".gov"],
                         unitPrice: "0.29", currency: "USD", alpineSecDBURL: nil, offlineFeeds: true)
        case .china:
            CloudProfile(cloudType: .china, acceptedRegistrySuffixes: [".azurecr.cn", ".cn"],
                         unitPrice: "1.86", currency: "CNY", alpineSecDBURL: nil, offlineFeeds: true)
        }
    }

    /// Whether a registry login server (`host[:port]`) may be registered in this cloud under `profile`.
    ///
    /// Loopback hosts are accepted only in the development profile; private-range and link-local
    /// addresses never are (SSRF guard). Returns the reason when refused.
    public func refusal(forLoginServer loginServer: String, profile: DeploymentProfile) -> String? {
        guard let host = Self.host(ofLoginServer: loginServer) else {
            return "'\(loginServer)' is not a host name with an optional port"
        }
        if Self.isLoopback(host) {
            return profile == .development ? nil : "loopback registries are accepted only in the development profile"
        }
        if Self.isPrivateAddress(host) {
            return "'\(host)' is a private, link-local or unspecified address"
        }
        if !acceptedRegistrySuffixes.isEmpty, !acceptedRegistrySuffixes.contains(where: { host.hasSuffix($0) }) {
            return "the \(cloudType.rawValue) cloud accepts registries ending in \(acceptedRegistrySuffixes.joined(separator: ", ")) only"
        }
        return nil
    }

    /// Whether a webhook receiver host may be called (SSRF guard): never private, link-local or unspecified
    /// addresses; loopback only in the development profile. Returns the reason when refused.
    public func refusalForWebhook(host: String, profile: DeploymentProfile) -> String? {
        guard let name = Self.host(ofLoginServer: host) else { return "'\(host)' is not a host name with an optional port" }
        if Self.isLoopback(name) {
            return profile == .development ? nil : "loopback receivers are accepted only in the development profile"
        }
        if Self.isPrivateAddress(name) { return "'\(name)' is a private, link-local or unspecified address" }
        return nil
    }

    /// The lowercase host of `host[:port]`, or nil when malformed.
    public static func host(ofLoginServer loginServer: String) -> String? {
        guard !loginServer.isEmpty, loginServer.count <= 255,
              !loginServer.contains("/"), !loginServer.contains("@"), !loginServer.contains(" ")
        else { return nil }
        guard let components = URLComponents(string: "https://\(loginServer)"), let host = components.host,
              !host.isEmpty, components.path.isEmpty
        else { return nil }
        return host.lowercased()
    }

    static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" { return true }
        switch addressBytes(host).map(ipv4Unmapped) {
        case .some(let bytes) where bytes.count == 4: return bytes[0] == 127
        case .some(let bytes): return bytes == [UInt8](repeating: 0, count: 15) + [1]
        case nil: return false
        }
    }

    static func isPrivateAddress(_ host: String) -> Bool {
        switch addressBytes(host).map(ipv4Unmapped) {
        case .some(let b) where b.count == 4:
            switch (b[0], b[1]) {
            case (10, _), (192, 168), (169, 254), (0, _): return true
            case (172, let second) where (16...31).contains(second): return true
            default: return false
            }
        case .some(let b):
            // unspecified ::, unique local fc00::/7, link-local fe80::/10
            return b.allSatisfy { $0 == 0 } || b[0] & 0xfe == 0xfc || (b[0] == 0xfe && b[1] & 0xc0 == 0x80)
        case nil:
            return false
        }
    }

    /// The bytes of an IP address literal in every form a resolver accepts, or nil for a host name: IPv4 as
    /// inet_aton(3) reads it (`10.0.0.1`, and also `10.1`, `0x0a000001`, `167772161`, `012.0.0.1`), which
    /// getaddrinfo(3) accepts too, so each spelling must be judged by the address it means; IPv6 with or
    /// without brackets (inet_pton(3)).
    static func addressBytes(_ host: String) -> [UInt8]? {
        if host.contains(":") {
            var address = in6_addr()
            let literal = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
            guard inet_pton(AF_INET6, literal, &address) == 1 else { return nil }
            return withUnsafeBytes(of: &address) { Array($0) }
        }
        var address = in_addr()
        guard inet_aton(host, &address) != 0 else { return nil }
        return withUnsafeBytes(of: &address.s_addr) { Array($0) }
    }

    /// The IPv4 address inside an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, RFC 4291 section 2.5.5.2); others unchanged.
    static func ipv4Unmapped(_ bytes: [UInt8]) -> [UInt8] {
        guard bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff else { return bytes }
        return Array(bytes[12...])
    }
}
