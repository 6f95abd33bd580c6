import ArgumentParser
import Crypto
import Foundation
import GantryRuntime
import OpenAPIRuntime
import ScannerAPI
import VulnerabilityDB

/// Reading and writing Ed25519 feed-signing keys: files hold the base64 of the raw 32-byte key.
enum SigningKeys {
    /// Reads a private key file written by `gantry feeds keygen`.
    /// - Throws: `CLIError` naming the file and what is wrong.
    static func privateKey(at path: String) throws -> Curve25519.Signing.PrivateKey {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw CLIError("\(path) cannot be read") }
        guard let raw = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)), raw.count == 32,
              let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw) else {
            throw CLIError("\(path) is not a feed-signing key (base64 of a raw 32-byte Ed25519 private key; see gantry feeds keygen)")
        }
        return key
    }
}

/// `gantry feeds keygen --out FILE`: a new Ed25519 feed-signing key.
struct FeedsKeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Create an Ed25519 feed-signing key; prints the public key to configure as GANTRY_FEEDS_PUBLIC_KEY.")

    @Option(help: "Where to write the private key (created with mode 0600; never overwritten).")
    var out: String

    func run() throws {
        guard !FileManager.default.fileExists(atPath: out) else { throw CLIError("\(out) exists; not overwritten") }
        let key = Curve25519.Signing.PrivateKey()
        guard FileManager.default.createFile(atPath: out, contents: Data(key.rawRepresentation.base64EncodedString().utf8),
                                             attributes: [.posixPermissions: 0o600]) else {
            throw CLIError("\(out) cannot be created")
        }
        print(key.publicKey.rawRepresentation.base64EncodedString())
        FileHandle.standardError.write(Data("key id \(FeedBundle.keyID(of: key.publicKey)); private key in \(out)\n".utf8))
    }
}

/// `gantry feeds bundle --from-dir DIR --out FILE --signing-key KEY`: a signed bundle straight from feed files.
struct FeedsBundleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bundle",
        abstract: "Build a signed feed bundle from a directory of feed files (formats recognised from content).")

    @Option(name: .customLong("from-dir"), help: "A directory (or one file) of feed files, for example ../shared/corpus/3-vuln-feeds.")
    var fromDir: String
    @Option(help: "The bundle to write.")
    var out: String
    @Option(help: "The private key file from gantry feeds keygen.")
    var signingKey: String

    func run() throws {
        let key = try SigningKeys.privateKey(at: signingKey)
        let result = try FeedLoader.load(URL(fileURLWithPath: fromDir))
        for skipped in result.skipped { FileHandle.standardError.write(Data("skipped \(skipped.path): \(skipped.reason)\n".utf8)) }
        guard !result.documents.isEmpty else { throw CLIError("no feed documents found under \(fromDir)") }
        let manifest = try FeedBundle.write(result.documents, to: URL(fileURLWithPath: out), signingKey: key)
        let store = InMemoryVulnerabilityStore(documents: result.documents)
        let counts = store.counts
        print("\(out): \(manifest.documents.count) documents, \(counts.affected) affected rows, \(counts.records) records, "
            + "\(counts.kev) KEV, \(counts.epss) EPSS; \(result.skipped.count) files skipped; signed by \(manifest.keyID)")
    }
}

/// `gantry feeds import BUNDLE`: sends a signed bundle to the scanner, which verifies and imports it.
struct FeedsImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import", abstract: "Import a signed feed bundle into the scanner's knowledge base.")

    @Argument(help: "The bundle file.")
    var bundle: String

    func run() async throws {
        guard let data = FileManager.default.contents(atPath: bundle) else { throw CLIError("\(bundle) cannot be read") }
        let connection = try await ServiceConnection.fromEnvironment()
        let (url, transport, middlewares) = connection.clientParts(.scanner)
        let client = Client(serverURL: url, transport: transport, middlewares: middlewares)
        switch try await client.importFeedBundle(body: .binary(HTTPBody(data))) {
        case .ok(let ok):
            for item in try ok.body.json.items {
                print("\(item.source): \(item.advisories) affected rows\(item.changed ? "" : " (unchanged)")")
            }
        case .badRequest(let problem), .contentTooLarge(let problem), .unprocessableContent(let problem):
            let detail = (try? problem.body.applicationProblemJson.detail) ?? nil
            throw CLIError("\(bundle): \(detail ?? "refused")")
        case .undocumented(let status, let payload):
            throw await CLIError.undocumented("\(bundle): the scanner", status: status, payload)
        }
    }
}

/// `gantry feeds export --out FILE --signing-key KEY`: everything the scanner imported, as a signed bundle.
struct FeedsExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Export the scanner's knowledge base as a signed bundle.")

    @Option(help: "The bundle to write.")
    var out: String
    @Option(help: "The private key file from gantry feeds keygen.")
    var signingKey: String

    func run() async throws {
        let key = try SigningKeys.privateKey(at: signingKey)
        let connection = try await ServiceConnection.fromEnvironment()
        let (url, transport, middlewares) = connection.clientParts(.scanner)
        let client = Client(serverURL: url, transport: transport, middlewares: middlewares)
        guard case .ok(let ok) = try await client.exportFeeds() else { throw CLIError("the scanner refused the export") }
        let body = try await Data(collecting: try ok.body.binary, upTo: FeedBundle.maxTotalBytes)
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let documents = try body.split(separator: 0x0A).map { try decoder.decode(FeedDocument.self, from: Data($0)) }
        let manifest = try FeedBundle.write(documents, to: URL(fileURLWithPath: out), signingKey: key)
        print("\(out): \(manifest.documents.count) documents; signed by \(manifest.keyID)")
    }
}

/// `gantry feeds list`: the scanner's feeds.
struct FeedsListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the scanner's feeds.")

    func run() async throws {
        let connection = try await ServiceConnection.fromEnvironment()
        let (url, transport, middlewares) = connection.clientParts(.scanner)
        let client = Client(serverURL: url, transport: transport, middlewares: middlewares)
        guard case .ok(let ok) = try await client.listFeeds() else { throw CLIError("the scanner refused the listing") }
        for feed in try ok.body.json.items {
            print("\(feed.source)  \(feed.kind)  \(feed.affected) affected  \(feed.vulnerabilities) records  "
                + "\(feed.namespaces.joined(separator: ","))  op \(feed.operation)")
        }
    }
}
