import ArgumentParser
import Foundation
import GantryRuntime
import OpenAPIRuntime
import ScannerAPI

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

    static func importFiles(paths: [String], connection: ServiceConnection)
        async throws -> [Components.Schemas.FeedImport] {
        let (url, transport, middlewares) = connection.clientParts(.scanner)
        let client = Client(serverURL: url, transport: transport, middlewares: middlewares)
        var results: [Components.Schemas.FeedImport] = []
        for file in try files(in: paths) {
            let data = try Data(contentsOf: file)
            let body = HTTPBody(data)
            let output = try await client.importAlpineSecDB(body: file.pathExtension == "json" ? .binary(body) : .yaml(body))
            switch output {
            case .ok(let ok): results.append(try ok.body.json)
            case .badRequest(let problem), .contentTooLarge(let problem):
                let detail = (try? problem.body.applicationProblemJson.detail) ?? nil
                throw CLIError("\(file.path): \(detail ?? "rejected")")
            case .undocumented(let status, _):
                throw CLIError("\(file.path): the scanner answered HTTP \(status)")
            }
        }
        return results
    }
}
