import ArgumentParser
import Foundation
import GantryRuntime
import OpenAPIRuntime
import ScannerAPI
import VulnerabilityDB

/// `gantry feeds import-alpine-secdb PATH…`: imports Alpine secdb documents (YAML or JSON files, or
/// directories of them) into the scanner's knowledge base, the way an offline deployment is fed.
struct ImportAlpineSecDBCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import-alpine-secdb",
        abstract: "Import Alpine secdb documents (files or directories of *.yaml / *.json) into the scanner.")

    @Argument(help: "Files or directories.")
    var paths: [String]

    func run() async throws {
        let connection = try await ServiceConnection.fromEnvironment()
        let results = try await Self.importFiles(paths: paths, connection: connection)
        for result in results {
            print("\(result.source): \(result.advisories) advisories\(result.changed ? "" : " (unchanged)")")
        }
    }

    /// The secdb files under `paths`, sorted.
    static func files(in paths: [String]) throws -> [URL] {
        var files: [URL] = []
        for path in paths {
            let url = URL(fileURLWithPath: path)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
                throw CLIError("\(path) does not exist")
            }
            if isDirectory.boolValue {
                files += try FileManager.default.contentsOfDirectory(at: url, includingPropertiesForKeys: nil)
                    .filter { ["yaml", "yml", "json"].contains($0.pathExtension) && $0.lastPathComponent.contains("secdb") }
            } else {
                files.append(url)
            }
        }
        return files.sorted { $0.path < $1.path }
    }

    /// One file per feed source (`distroversion`/`reponame`): two documents for the same source would
    /// replace each other on every import. The one with more advisories is kept; the others are reported.
    static func deduplicated(_ files: [URL]) throws -> [URL] {
        var chosen: [String: (URL, Int)] = [:]
        var order: [String] = []
        for file in files {
            guard let document = try? AlpineSecDB.parse(try Data(contentsOf: file)) else {
                order.append(file.path)
                chosen[file.path] = (file, 0)  // the scanner reports what is wrong with it
                continue
            }
            let source = "\(document.distroVersion)/\(document.repoName)"
            if let (kept, count) = chosen[source] {
                let (keep, drop) = document.advisories.count > count ? (file, kept) : (kept, file)
                FileHandle.standardError.write(Data("note: \(drop.lastPathComponent) is the same feed (\(source)) as \(keep.lastPathComponent), which has more advisories; skipped\n".utf8))
                chosen[source] = (keep, max(count, document.advisories.count))
            } else {
                order.append(source)
                chosen[source] = (file, document.advisories.count)
            }
        }
        return order.compactMap { chosen[$0]?.0 }
    }

    static func importFiles(paths: [String], connection: ServiceConnection)
        async throws -> [Components.Schemas.FeedImport] {
        let (url, transport, middlewares) = connection.clientParts(.scanner)
        let client = Client(serverURL: url, transport: transport, middlewares: middlewares)
        var results: [Components.Schemas.FeedImport] = []
        for file in try deduplicated(try files(in: paths)) {
            let data = try Data(contentsOf: file)
            let body = HTTPBody(data)
            let output = try await client.importAlpineSecDB(body: file.pathExtension == "json" ? .binary(body) : .yaml(body))
            switch output {
            case .ok(let ok): results.append(try ok.body.json)
            case .badRequest(let problem), .contentTooLarge(let problem):
                let detail = (try? problem.body.applicationProblemJson.detail) ?? nil
                throw CLIError("\(file.path): \(detail ?? "rejected")")
            case .undocumented(let status, let payload):
                throw await CLIError.undocumented("\(file.path): the scanner", status: status, payload)
            }
        }
        return results
    }
}
