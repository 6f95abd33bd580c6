import ArgumentParser
import Foundation
import GantryModel
import GantryRuntime
import OpenAPIRuntime
import ScannerAPI

/// `gantry scans …`
struct ScansCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scans", abstract: "Scan jobs and their history.", subcommands: [ScansHistoryCommand.self])
}

/// `gantry scans history --tenant T --digest D`: every scan of an image digest and every re-evaluation
/// that changed its findings, newest first (the scanner's `GET /v1/tenants/{tenantId}/scans`).
struct ScansHistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "Show an image digest's scan history: trigger, queued, started, finished, outcome, duration.")

    @Option(help: "The tenant ID (default: GANTRY_TENANT).")
    var tenant: String?

    @Option(help: "The image digest (sha256:…).")
    var digest: String

    @Option(help: "At most this many entries (1-500).")
    var limit: Int = 100

    @Flag(help: "Print the scanner's JSON instead of a table.")
    var json = false

    func validate() throws {
        guard (try? Digest(parsing: digest)) != nil else { throw ValidationError("--digest '\(digest)' is not a digest (sha256:<64 hex>)") }
        guard (1...500).contains(limit) else { throw ValidationError("--limit must be between 1 and 500") }
        guard let tenant = tenant ?? ProcessInfo.processInfo.environment["GANTRY_TENANT"], UUID(uuidString: tenant) != nil else {
            throw ValidationError("--tenant (or GANTRY_TENANT) must be a tenant ID (a UUID)")
        }
    }

    func run() async throws {
        let tenantID = tenant ?? ProcessInfo.processInfo.environment["GANTRY_TENANT"] ?? ""
        let connection = try await ServiceConnection.fromEnvironment()
        let (url, transport, middlewares) = connection.clientParts(.scanner)
        let client = ScannerAPI.Client(serverURL: url, transport: transport, middlewares: middlewares)
        let items: [Components.Schemas.ScanJob]
        switch try await client.listScans(path: .init(tenantId: tenantID), query: .init(digest: digest, limit: limit)) {
        case .ok(let ok): items = try ok.body.json.items
        case .badRequest(let problem):
            throw CLIError("the scanner refused the request: \((try? problem.body.applicationProblemJson.detail) ?? "400")")
        case .undocumented(let status, let payload):
            throw await CLIError.undocumented("the scanner", status: status, payload)
        }
        if json {
            print(try CLIOutput.json(items))
            return
        }
        print(Self.table(items))
    }

    /// One line per entry: trigger, queued, started, finished, status/outcome, duration, attempts, findings, error.
    static func table(_ items: [Components.Schemas.ScanJob]) -> String {
        guard !items.isEmpty else { return "no scans" }
        let time = Date.ISO8601FormatStyle()
        let header = ["TRIGGER", "QUEUED", "STARTED", "FINISHED", "OUTCOME", "DURATION", "ATTEMPTS", "FINDINGS", "ERROR"]
        let rows = items.map { item -> [String] in
            let outcome = item.outcome.map { "\(item.status.rawValue)/\($0.rawValue)" } ?? item.status.rawValue
            let duration = item.durationMs.map { String(format: "%.1fs", Double($0) / 1000) } ?? "-"
            return [item.trigger.rawValue, item.queuedAt.formatted(time), item.startedAt?.formatted(time) ?? "-",
                    item.finishedAt?.formatted(time) ?? "-", outcome, duration, "\(item.attempts)/\(item.maxAttempts)",
                    item.findings.map(String.init) ?? "-", item.error.map { String($0.prefix(80)) } ?? ""]
        }
        return CLIOutput.columns([header] + rows)
    }
}
