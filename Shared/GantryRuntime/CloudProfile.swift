import Foundation
import GantryModel

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
        host == "localhost" || host.hasPrefix("127.") || host == "::1" || host == "[::1]"
    }

    static func isPrivateAddress(_ host: String) -> Bool {
        let octets = host.split(separator: ".").compactMap { Int($0) }
        if octets.count == 4 {
            switch (octets[0], octets[1]) {
            case (10, _), (192, 168), (169, 254), (0, _): return true
            case (172, let second) where (16...31).contains(second): return true
            default: return false
            }
        }
        let lower = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        return lower.hasPrefix("fc") || lower.hasPrefix("fd") || lower.hasPrefix("fe80") || lower == "::"
    }
}
