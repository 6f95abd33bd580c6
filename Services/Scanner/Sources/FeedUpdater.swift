import AsyncHTTPClient
import Foundation
import GantryModel
import GantryRuntime
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import VulnerabilityDB

/// The publishers' feed URLs a deployment downloads by itself, per cloud type. Sovereign clouds
/// (government, china) have none: their profiles are bundle-only (`gantry feeds import`), so an
/// air-gapped deployment never reaches out.
///
/// Commercial sources: Alpine secdb JSON per branch and repository (https://secdb.alpinelinux.org/), the
/// Debian security tracker JSON and DSA/DLA lists, OSV's per-ecosystem `all.zip` exports
/// (https://google.github.io/osv.dev/data/#data-dumps) for the language ecosystems and the distributions
/// OSV carries, CISA KEV and FIRST EPSS. NVD (paged API with rate limits) and Red Hat CSAF VEX (a
/// `.tar.zst` archive of 100k+ files) are imported from bundles or files for now.
enum FeedSources {
    static func production(for cloud: CloudType) -> [URL] {
        guard cloud == .commercial else { return [] }
        var urls: [String] = []
        for minor in 12...22 {
            for repository in ["main", "community"] { urls.append("https://secdb.alpinelinux.org/v3.\(minor)/\(repository).json") }
        }
        urls += [
            "https://security-tracker.debian.org/tracker/data/json",
            "https://salsa.debian.org/security-tracker-team/security-tracker/-/raw/master/data/DSA/list",
            "https://salsa.debian.org/security-tracker-team/security-tracker/-/raw/master/data/DLA/list",
        ]
        for ecosystem in ["PyPI", "Go", "crates.io", "npm", "Maven", "RubyGems", "NuGet", "Packagist", "Debian", "Alpine",
                          "Ubuntu", "AlmaLinux", "Rocky%20Linux"] {
            urls.append("https://osv-vulnerabilities.storage.googleapis.com/\(ecosystem)/all.zip")
        }
        urls += [
            "https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json",
            "https://epss.cyentia.com/epss_scores-current.csv.gz",
        ]
        return urls.compactMap(URL.init(string:))
    }

    /// The sources of this deployment: `GANTRY_FEED_SOURCES` (comma-separated URLs, for mirrors and
    /// tests) when set, else the cloud's production list.
    /// - Throws: `ConfigurationError` for a value that is not a list of http(s) URLs.
    static func configured(_ configuration: GantryConfiguration) throws -> [URL] {
        guard let text = configuration.environment["GANTRY_FEED_SOURCES"] else {
            return production(for: configuration.cloud.cloudType)
        }
        return try text.split(separator: ",").map { item in
            let trimmed = item.trimmingCharacters(in: .whitespaces)
            guard let url = URL(string: trimmed), ["http", "https"].contains(url.scheme?.lowercased() ?? "") else {
                throw ConfigurationError(variable: "GANTRY_FEED_SOURCES", message: "'\(trimmed)' is not an http(s) URL")
            }
            return url
        }
    }
}

/// Downloads every configured feed source on a schedule (`GANTRY_FEEDS_UPDATE_SECONDS`, default 21600 = 6 h;
/// 0 turns it off), recognises each file's format from its content and imports it: an unchanged feed
/// writes nothing, a changed one is an update operation. A source that fails (unreachable, not a feed)
/// is logged and retried next round; the others are unaffected.
struct FeedUpdater: Service {
    let sources: [URL]
    let interval: Duration
    let knowledgeBase: PostgresKnowledgeBase
    let httpClient: HTTPClient
    let readiness: Readiness
    let logger: Logger
    /// Largest download accepted, bytes.
    var maxBytes = 2 << 30

    func run() async throws {
        // Off (no sources or interval 0): idle until shutdown, since a service that returns early stops
        // the whole service group.
        guard !sources.isEmpty, interval > .zero else {
            try? await gracefulShutdown()
            return
        }
        await readiness.waitUntilReady()
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await updateAll()
                try? await Task.sleep(for: interval)
            }
        }
    }

    /// One round over every source; returns the import results (for tests and logs).
    @discardableResult
    func updateAll() async -> [FeedImportResult] {
        var results: [FeedImportResult] = []
        for source in sources {
            do {
                results += try await update(source)
            } catch is CancellationError {
                break
            } catch {
                logger.warning("feed update failed", metadata: ["source": "\(source)", "error": "\(error)"])
            }
        }
        return results
    }

    /// Downloads one source to a private scratch file and imports what it holds.
    func update(_ source: URL) async throws -> [FeedImportResult] {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-feed-\(UUID().uuidString.lowercased())")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: false,
                                                attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(at: scratch) }
        let file = scratch.appendingPathComponent(source.lastPathComponent.isEmpty ? "feed" : source.lastPathComponent)
        var request = HTTPClientRequest(url: source.absoluteString)
        request.headers.add(name: "User-Agent", value: "gantry-feed-updater")
        let response = try await httpClient.execute(request, timeout: .seconds(600))
        guard response.status == .ok else { throw FeedUpdateError("\(source) answered HTTP \(response.status.code)") }
        guard FileManager.default.createFile(atPath: file.path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
            throw FeedUpdateError("cannot create \(file.path)")
        }
        let handle = try FileHandle(forWritingTo: file)
        var written = 0
        do {
            for try await chunk in response.body {
                written += chunk.readableBytes
                guard written <= maxBytes else { throw FeedUpdateError("\(source) is larger than \(maxBytes) bytes") }
                try handle.write(contentsOf: Data(chunk.readableBytesView))
            }
            try handle.close()
        } catch {
            try? handle.close()
            throw error
        }
        // The source's host and path name it, so two `all.zip` of different ecosystems stay apart.
        let name = (source.host ?? "") + source.path
        var results: [FeedImportResult] = []
        for document in try FeedLoader.loadFile(file, displayName: name) {
            results.append(try await knowledgeBase.importDocument(document))
        }
        return results
    }
}

struct FeedUpdateError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
