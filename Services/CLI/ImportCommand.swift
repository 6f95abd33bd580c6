import ArgumentParser
import Foundation
import GantryRuntime
import IngestionAPI
import OpenAPIRuntime

/// `gantry import SOURCE --registry ID --tenant ID [--wait]`: copies an image (every platform of an index)
/// from a source registry into the tenant's registry and has it scanned (trigger `import`), through
/// ingestion's `POST /v1/tenants/{tenantId}/registries/{registryId}/imports`.
struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import an image from another registry (Docker Hub by default) into a registry, then scan it.",
        discussion: """
            SOURCE is [host[:port]/]repository(:tag|@digest), e.g. alpine:3.20 (Docker Hub), \
            127.0.0.1:5001/team/app@sha256:…. Source credentials come from GANTRY_IMPORT_USERNAME and \
            GANTRY_IMPORT_PASSWORD when set.
            """)

    @Argument(help: "The source image reference.")
    var source: String

    @Option(help: "The target registry ID.")
    var registry: String

    @Option(help: "The tenant ID (default: GANTRY_TENANT).")
    var tenant: String?

    @Option(help: "Target repository (default: the source repository).")
    var repository: String?

    @Option(help: "Target tag (default: the source tag).")
    var tag: String?

    @Flag(help: "Speak plain HTTP to the source registry (development profile only).")
    var insecure = false

    @Flag(help: "Wait until the import is done or failed, printing its progress.")
    var wait = false

    @Option(help: "With --wait, give up after this many seconds.")
    var timeout: Int = 1800

    @Flag(help: "Print ingestion's JSON instead of a summary.")
    var json = false

    private var tenantID: String { tenant ?? ProcessInfo.processInfo.environment["GANTRY_TENANT"] ?? "" }

    func validate() throws {
        guard UUID(uuidString: registry) != nil else { throw ValidationError("--registry must be a registry ID (a UUID)") }
        guard UUID(uuidString: tenantID) != nil else {
            throw ValidationError("--tenant (or GANTRY_TENANT) must be a tenant ID (a UUID)")
        }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }

    func run() async throws {
        let connection = try await ServiceConnection.fromEnvironment()
        let (url, transport, middlewares) = connection.clientParts(.ingestion)
        let client = IngestionAPI.Client(serverURL: url, transport: transport, middlewares: middlewares)
        let environment = ProcessInfo.processInfo.environment
        var credentials: Components.Schemas.SourceCredentials?
        if let username = environment["GANTRY_IMPORT_USERNAME"], let password = environment["GANTRY_IMPORT_PASSWORD"] {
            credentials = .init(username: username, password: password)
        }
        let request = Components.Schemas.ImportRequest(source: source, repository: repository, tag: tag,
                                                       insecure: insecure ? true : nil, credentials: credentials)
        var job: Components.Schemas.ImportJob
        switch try await client.createImport(path: .init(tenantId: tenantID, registryId: registry), body: .json(request)) {
        case .accepted(let accepted): job = try accepted.body.json
        case .badRequest(let problem): throw CLIError("refused: \(Self.detail(try? problem.body.applicationProblemJson))")
        case .notFound(let problem): throw CLIError("not found: \(Self.detail(try? problem.body.applicationProblemJson))")
        case .unprocessableContent(let problem):
            throw CLIError("refused: \(Self.detail(try? problem.body.applicationProblemJson))")
        case .undocumented(let status, _): throw CLIError("ingestion answered HTTP \(status)")
        }
        if !json { print("import \(job.importId) of \(job.source) queued") }
        if wait {
            let deadline = ContinuousClock.now + .seconds(timeout)
            var last = ""
            while job.status == .queued || job.status == .copying {
                guard ContinuousClock.now < deadline else { throw CLIError("import \(job.importId) still \(job.status.rawValue) after \(timeout) s") }
                try await Task.sleep(for: .milliseconds(500))
                switch try await client.getImport(path: .init(tenantId: tenantID, registryId: registry, importId: job.importId)) {
                case .ok(let ok): job = try ok.body.json
                case .badRequest(let problem): throw CLIError(Self.detail(try? problem.body.applicationProblemJson))
                case .notFound(let problem): throw CLIError(Self.detail(try? problem.body.applicationProblemJson))
                case .undocumented(let status, _): throw CLIError("ingestion answered HTTP \(status)")
                }
                let line = Self.progress(job)
                if !json && line != last { print(line) }
                last = line
            }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.dateEncodingStrategy = .iso8601
            print(String(decoding: try encoder.encode(job), as: UTF8.self))
        } else if wait {
            for platform in job.platforms {
                print("  \(platform.platform ?? "-")  \(platform.digest)")
            }
        }
        if job.status == .failed { throw CLIError("import \(job.importId) failed: \(job.reason ?? "no reason given")") }
    }

    static func progress(_ job: Components.Schemas.ImportJob) -> String {
        "\(job.status.rawValue): \(job.blobsCopied) blobs copied (\(job.bytesCopied) bytes), \(job.blobsMounted) mounted, "
            + "\(job.blobsSkipped) already present" + (job.digest.map { ", \($0)" } ?? "")
            + (job.status == .done ? (job.scanRequested == true ? ", scan requested" : ", no scan (plan disabled)") : "")
    }

    static func detail(_ problem: Components.Schemas.Problem?) -> String {
        problem?.detail ?? problem?.title ?? "no detail"
    }
}
