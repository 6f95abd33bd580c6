import ArgumentParser
import Foundation
import GantryRuntime
import IngestionAPI
import OpenAPIRuntime

/// `gantry import …`: image imports through ingestion's imports API. `gantry import SOURCE …` (the default
/// subcommand `start`) starts one; `gantry import list` and `gantry import status ID` show them.
struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import images from another registry (Docker Hub by default) into a registry and have them scanned.",
        subcommands: [ImportStartCommand.self, ImportListCommand.self, ImportStatusCommand.self],
        defaultSubcommand: ImportStartCommand.self)
}

/// The tenant and registry every import command names.
struct ImportTarget: ParsableArguments {
    @Option(help: "The target registry ID.")
    var registry: String

    @Option(help: "The tenant ID (default: GANTRY_TENANT).")
    var tenant: String?

    var tenantID: String { tenant ?? ProcessInfo.processInfo.environment["GANTRY_TENANT"] ?? "" }

    func validate() throws {
        guard UUID(uuidString: registry) != nil else { throw ValidationError("--registry must be a registry ID (a UUID)") }
        guard UUID(uuidString: tenantID) != nil else {
            throw ValidationError("--tenant (or GANTRY_TENANT) must be a tenant ID (a UUID)")
        }
    }

    func client() async throws -> IngestionAPI.Client {
        let connection = try await ServiceConnection.fromEnvironment()
        let (url, transport, middlewares) = connection.clientParts(.ingestion)
        return IngestionAPI.Client(serverURL: url, transport: transport, middlewares: middlewares)
    }
}

/// `gantry import [start] SOURCE --registry ID --tenant ID [--wait]`: copies an image (every platform of an
/// index) from a source registry into the tenant's registry and has it scanned (trigger `import`), through
/// ingestion's `POST /v1/tenants/{tenantId}/registries/{registryId}/imports`; with `--wait`, follows the job
/// until its copy and scans have ended.
struct ImportStartCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start",
        abstract: "Import an image from another registry (Docker Hub by default) into a registry, then scan it.",
        discussion: """
            SOURCE is [host[:port]/]repository(:tag|@digest), e.g. alpine:3.20 (Docker Hub), \
            127.0.0.1:5001/team/app@sha256:…. Source credentials come from GANTRY_IMPORT_USERNAME and \
            GANTRY_IMPORT_PASSWORD when set. `gantry import SOURCE …` is short for `gantry import start SOURCE …`.
            """)

    @Argument(help: "The source image reference.")
    var source: String

    @OptionGroup var target: ImportTarget

    @Option(help: "Target repository (default: the source repository).")
    var repository: String?

    @Option(help: "Target tag (default: the source tag).")
    var tag: String?

    @Flag(help: "Speak plain HTTP to the source registry (development profile only).")
    var insecure = false

    @Flag(help: "Wait until the copy and the scans have ended, printing the progress.")
    var wait = false

    @Option(help: "With --wait, give up after this many seconds.")
    var timeout: Int = 1800

    @Flag(help: "Print ingestion's JSON instead of a summary.")
    var json = false

    func validate() throws {
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }

    func run() async throws {
        let client = try await target.client()
        let (tenantID, registry) = (target.tenantID, target.registry)
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
        case .badRequest(let problem): throw CLIError("refused: \(ImportReport.detail(try? problem.body.applicationProblemJson))")
        case .notFound(let problem): throw CLIError("not found: \(ImportReport.detail(try? problem.body.applicationProblemJson))")
        case .unprocessableContent(let problem):
            throw CLIError("refused: \(ImportReport.detail(try? problem.body.applicationProblemJson))")
        case .undocumented(let status, let payload): throw await CLIError.undocumented("ingestion", status: status, payload)
        }
        if !json { print("import \(job.importId) of \(job.source) queued (gantry import status \(job.importId) --registry \(registry))") }
        if wait {
            let deadline = ContinuousClock.now + .seconds(timeout)
            var last = ""
            while !job.status.hasEnded {
                guard ContinuousClock.now < deadline else {
                    throw CLIError("import \(job.importId) still \(job.status.rawValue) after \(timeout) s")
                }
                try await Task.sleep(for: .milliseconds(500))
                job = try await ImportStatusCommand.fetch(client, tenantID: tenantID, registry: registry, id: job.importId)
                let line = ImportReport.progress(job)
                if !json && line != last { print(line) }
                last = line
            }
        }
        if json {
            print(try CLIOutput.json(job))
        } else if wait {
            ImportReport.platforms(job).forEach { print($0) }
        }
        try ImportReport.exitStatus(job)
    }
}

/// `gantry import list --registry ID [--tenant ID] [--status S] [--limit N] [--page-token T | --all]`: the
/// registry's imports, newest first (ingestion's `GET …/registries/{registryId}/imports`).
struct ImportListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List a registry's imports, newest first, with their status.")

    @OptionGroup var target: ImportTarget

    @Option(help: "Only imports in this status (queued, copying, failed, done, scanRequested, scanQueued, scanning, scanned, scanFailed).")
    var status: String?

    @Option(help: "Imports per page (1-100).")
    var limit: Int = Self.defaultLimit

    static let defaultLimit = 20

    @Option(help: "Continue after an earlier page (the token it printed).")
    var pageToken: String?

    @Flag(help: "Follow every page.")
    var all = false

    @Flag(help: "Print ingestion's JSON instead of a table.")
    var json = false

    func validate() throws {
        guard (1...100).contains(limit) else { throw ValidationError("--limit must be between 1 and 100") }
        if let status, Components.Schemas.ImportStatus(rawValue: status) == nil {
            throw ValidationError("--status '\(status)' is none of: "
                + Components.Schemas.ImportStatus.allCases.map(\.rawValue).joined(separator: ", "))
        }
    }

    func run() async throws {
        let client = try await target.client()
        var items: [Components.Schemas.ImportJob] = []
        var token = pageToken
        repeat {
            let query = Operations.ListImports.Input.Query(status: status.flatMap { .init(rawValue: $0) }, limit: limit,
                                                            pageToken: token)
            switch try await client.listImports(path: .init(tenantId: target.tenantID, registryId: target.registry), query: query) {
            case .ok(let ok):
                let page = try ok.body.json
                items += page.items
                token = page.nextPageToken
            case .badRequest(let problem): throw CLIError("refused: \(ImportReport.detail(try? problem.body.applicationProblemJson))")
            case .notFound(let problem): throw CLIError("not found: \(ImportReport.detail(try? problem.body.applicationProblemJson))")
            case .undocumented(let status, let payload): throw await CLIError.undocumented("ingestion", status: status, payload)
            }
        } while all && token != nil
        if json {
            print(try CLIOutput.json(Components.Schemas.ImportJobList(items: items, nextPageToken: token)))
            return
        }
        print(ImportReport.table(items))
        if let token { print("more: \(nextPageCommand(token: token))") }
    }

    /// This command again, for the page after `token`: the same registry, tenant (when given), status and limit.
    func nextPageCommand(token: String) -> String {
        var words = ["gantry", "import", "list", "--registry", target.registry]
        if let tenant = target.tenant { words += ["--tenant", tenant] }
        if let status { words += ["--status", status] }
        if limit != Self.defaultLimit { words += ["--limit", String(limit)] }
        return (words + ["--page-token", token]).joined(separator: " ")
    }
}

/// `gantry import status ID --registry ID [--tenant ID]`: one import, its copy and the scan of each platform
/// image (ingestion's `GET …/imports/{importId}`). Exits non-zero when the copy or a scan failed.
struct ImportStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show an import: its copy and the scan of each platform image.")

    @Argument(help: "The import ID.")
    var id: String

    @OptionGroup var target: ImportTarget

    @Flag(help: "Print ingestion's JSON instead of a summary.")
    var json = false

    func validate() throws {
        guard UUID(uuidString: id) != nil else { throw ValidationError("the import ID must be a UUID") }
    }

    func run() async throws {
        let job = try await Self.fetch(try await target.client(), tenantID: target.tenantID, registry: target.registry, id: id)
        if json {
            print(try CLIOutput.json(job))
        } else {
            print(ImportReport.summary(job))
            ImportReport.platforms(job).forEach { print($0) }
        }
        try ImportReport.exitStatus(job)
    }

    static func fetch(_ client: IngestionAPI.Client, tenantID: String, registry: String, id: String) async throws
        -> Components.Schemas.ImportJob {
        switch try await client.getImport(path: .init(tenantId: tenantID, registryId: registry, importId: id)) {
        case .ok(let ok): return try ok.body.json
        case .badRequest(let problem): throw CLIError("refused: \(ImportReport.detail(try? problem.body.applicationProblemJson))")
        case .notFound(let problem): throw CLIError("not found: \(ImportReport.detail(try? problem.body.applicationProblemJson))")
        case .undocumented(let status, let payload): throw await CLIError.undocumented("ingestion", status: status, payload)
        }
    }
}

extension Components.Schemas.ImportStatus {
    /// Nothing more will happen: the copy failed, or it ended and so did its scans (or none was requested).
    var hasEnded: Bool { [.failed, .done, .scanned, .scanFailed].contains(self) }
}

/// How the import commands print jobs.
enum ImportReport {
    /// One line while waiting: the status, transfer counts and, once copied, the digest.
    static func progress(_ job: Components.Schemas.ImportJob) -> String {
        "\(job.status.rawValue): \(job.blobsCopied) blobs copied (\(job.bytesCopied) bytes), \(job.blobsMounted) mounted, "
            + "\(job.blobsSkipped) already present" + (job.digest.map { ", \($0)" } ?? "")
            + (job.status == .done ? ", no scan (plan disabled or registry not applicable)" : "")
            + (job.scanStatusError.map { " (scan status unknown: \($0))" } ?? "")
    }

    /// `import ID: STATUS`, the source and target, and the reason of a failure.
    static func summary(_ job: Components.Schemas.ImportJob) -> String {
        var lines = ["import \(job.importId): \(job.status.rawValue)",
                     "  source: \(job.source)",
                     "  target: \(job.targetRepository)" + (job.targetTag.map { ":\($0)" } ?? "") + (job.digest.map { "@\($0)" } ?? ""),
                     "  copied: \(job.blobsCopied) blobs (\(job.bytesCopied) bytes), \(job.blobsMounted) mounted, "
                        + "\(job.blobsSkipped) already present, attempt \(job.attempts)"]
        if let reason = job.reason { lines.append("  \(job.status == .failed ? "failed" : "last attempt failed"): \(reason)") }
        if let error = job.scanStatusError { lines.append("  scan status unknown: \(error)") }
        return lines.joined(separator: "\n")
    }

    /// One line per manifest the import copied: what it is, its digest and its scan, e.g.
    /// `  platform linux/amd64: sha256:… scan: scanned (assessed, 3 findings, finished 2026-…)`.
    static func platforms(_ job: Components.Schemas.ImportJob) -> [String] {
        job.platforms.map { platform in
            let what = platform.platform.map { $0.hasPrefix("unknown/") ? "attestation" : "platform \($0)" } ?? "image"
            return "  \(what): \(platform.digest) scan: \(scan(platform.scan))"
        }
    }

    static func scan(_ scan: Components.Schemas.ImportScan?) -> String {
        guard let scan else { return "none" }
        let time = Date.ISO8601FormatStyle()
        switch scan.status {
        case .requested: return "requested"
        case .queued: return "queued" + (scan.trigger.map { $0 == "import" ? "" : " (joined a \($0) scan)" } ?? "")
        case .scanning: return "scanning" + (scan.startedAt.map { " since \($0.formatted(time))" } ?? "")
        case .scanned:
            let details = [scan.outcome?.rawValue, scan.findings.map { "\($0) findings" },
                           scan.finishedAt.map { "finished \($0.formatted(time))" }].compactMap { $0 }
            return "scanned" + (details.isEmpty ? "" : " (\(details.joined(separator: ", ")))")
        case .failed: return "failed (\(scan.error ?? "no reason given"))"
        }
    }

    /// One row per import: ID, created, status, source, target and digest.
    static func table(_ items: [Components.Schemas.ImportJob]) -> String {
        guard !items.isEmpty else { return "no imports" }
        let time = Date.ISO8601FormatStyle()
        let header = ["IMPORT", "CREATED", "STATUS", "SOURCE", "TARGET", "DIGEST"]
        let rows = items.map { job in
            [job.importId, job.createdAt.formatted(time), job.status.rawValue, job.source,
             job.targetRepository + (job.targetTag.map { ":\($0)" } ?? ""), job.digest ?? "-"]
        }
        return CLIOutput.columns([header] + rows)
    }

    /// Fails the command when the copy or a scan failed.
    static func exitStatus(_ job: Components.Schemas.ImportJob) throws {
        if job.status == .failed { throw CLIError("import \(job.importId) failed: \(job.reason ?? "no reason given")") }
        if job.status == .scanFailed {
            let reasons = job.platforms.compactMap { $0.scan?.status == .failed ? $0.scan?.error : nil }
            throw CLIError("import \(job.importId) was copied but a scan failed: \(reasons.joined(separator: "; "))")
        }
    }

    static func detail(_ problem: Components.Schemas.Problem?) -> String {
        problem?.detail ?? problem?.title ?? "no detail"
    }
}
