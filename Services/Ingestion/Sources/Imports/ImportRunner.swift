import Foundation
import GantryModel
import GantryRuntime
import Logging
import PostgresNIO
import RegistryClient
import ScannerAPI
import ServiceLifecycle

/// Runs import jobs (`ingestion.imports`): takes a due job (queued, or copying with a lease that ran out
/// because its worker died), renews its lease while it copies, and records the outcome.
///
/// The copy follows the distribution spec: the source manifest (and, for an index, every manifest it lists,
/// attestations included, so the index's digest stays valid) is fetched by digest; each blob is skipped when
/// the target has it, mounted when source and target are one registry, else streamed; then the manifests
/// are put, children before the index, with their exact bytes and media type. Finally, in one transaction,
/// the images are recorded in the inventory as scan-requested, one scan request per platform image
/// (trigger `import`) goes to the scanner through the outbox, and the job is marked done.
///
/// Transient failures (connection errors, 429 and 5xx answers) are retried up to `maxAttempts` times with
/// exponential backoff; anything else fails the job with its reason. Source credentials are cleared when
/// the job ends either way.
struct ImportRunner: Service {
    let runtime: ServiceRuntime
    let directory: RegistryDirectory
    let registry: RegistryClient
    let sealer: ImportCredentialSealer?
    /// How long a claimed job stays leased without a heartbeat (renewed every third of it).
    var lease: Duration = .seconds(60)
    var pollInterval: Duration = .milliseconds(500)
    var maxAttempts = 3

    func run() async throws {
        await PollingLoop.run(name: "import runner", readiness: runtime.readiness, interval: pollInterval,
                              logger: runtime.logger) {
            // Bounded: a claim caught by a database restart may never answer (see `bounded`), and would hold
            // the runner, and the service's shutdown, with it.
            guard let job = try await bounded("claiming an import", .seconds(15), { try await claim() }) else { return false }
            await execute(job)
            return true
        }
    }

    /// A claimed job.
    struct Job: Sendable {
        var id: UUID
        var tenantID: UUID
        var registryID: UUID
        var sourceBaseURL: String
        var sourceRepository: String
        var sourceReference: String
        var sealedCredentials: String?
        var targetRepository: String
        var targetTag: String?
        var attempts: Int
    }

    /// Counts reported while copying.
    struct Progress: Sendable {
        var bytesCopied: Int64 = 0
        var mounted = 0
        var copied = 0
        var skipped = 0
    }

    private var leaseSeconds: Double { Double(lease.components.seconds) + Double(lease.components.attoseconds) / 1e18 }

    /// Leases the oldest due job; nil when none is due.
    func claim() async throws -> Job? {
        // Any tenant's job may be due: claimed with system access; everything done for the job afterwards runs as
        // the job's tenant (`withTenant`).
        let logger = runtime.logger
        return try await runtime.database.withSystemAccess(logger: logger) { connection -> Job? in
            let rows = try await connection.query("""
                UPDATE ingestion.imports SET status = 'copying', attempts = attempts + 1,
                  lease_until = now() + \(leaseSeconds)::float8 * interval '1 second', updated_at = now(),
                  bytes_copied = 0, blobs_mounted = 0, blobs_copied = 0, blobs_skipped = 0
                WHERE id = (SELECT id FROM ingestion.imports
                            WHERE (status = 'queued' AND available_at <= now()) OR (status = 'copying' AND lease_until < now())
                            ORDER BY available_at LIMIT 1 FOR UPDATE SKIP LOCKED)
                RETURNING id, tenant_id, registry_id, source_base_url, source_repository, source_reference,
                          source_credentials_sealed, target_repository, target_tag, attempts
                """, logger: logger)
            for try await (id, tenant, registry, base, repository, reference, sealed, target, tag, attempts)
                in rows.decode((UUID, UUID, UUID, String, String, String, String?, String, String?, Int).self) {
                return Job(id: id, tenantID: tenant, registryID: registry, sourceBaseURL: base, sourceRepository: repository,
                           sourceReference: reference, sealedCredentials: sealed, targetRepository: target, targetTag: tag,
                           attempts: attempts)
            }
            return nil
        }
    }

    /// Copies, then finishes, retries or fails the job; never throws (a shutdown leaves the lease to run out).
    func execute(_ job: Job) async {
        let logger = runtime.logger
        logger.info("import started", metadata: ["import": "\(job.id)", "attempt": "\(job.attempts)"])
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await heartbeat(job) }
                group.addTask { try await copy(job) }
                // The copy finishes first (the heartbeat never does); then the heartbeat is stopped.
                try await group.next()
                group.cancelAll()
            }
        } catch is CancellationError {
            return
        } catch {
            await fail(job, error)
        }
    }

    private func heartbeat(_ job: Job) async throws {
        while true {
            try await Task.sleep(for: lease / 3)
            try await update(job, """
                UPDATE ingestion.imports SET lease_until = now() + \(leaseSeconds)::float8 * interval '1 second'
                WHERE id = \(job.id) AND status = 'copying'
                """)
        }
    }

    /// Runs one statement on the job's row as the job's tenant (row-level security).
    private func update(_ job: Job, _ query: PostgresQuery) async throws {
        let logger = runtime.logger
        try await runtime.database.withTenant(job.tenantID, logger: logger) { connection in
            _ = try await connection.query(query, logger: logger)
        }
    }

    /// One manifest of the image: its bytes as fetched and, for index entries, the entry's platform.
    struct CopiedManifest: Sendable {
        var manifest: FetchedManifest
        var platform: Platform?
        var isAttestation: Bool
    }

    private func copy(_ job: Job) async throws {
        guard let registration = try await directory.registration(id: job.registryID),
              registration.registry.tenantID == job.tenantID else {
            throw ImportFailure("the registry is no longer registered for this tenant")
        }
        guard let targetURL = registration.registry.baseURL else {
            throw ImportFailure("discovery gave no URL for registry \(registration.registry.loginServer)")
        }
        let target = RegistryEndpoint(baseURL: targetURL, credentials: registration.registry.credentials)
        guard let sourceURL = URL(string: job.sourceBaseURL) else { throw ImportFailure("stored source URL is malformed") }
        var sourceCredentials: RegistryCredentials?
        if let sealed = job.sealedCredentials {
            guard let sealer else { throw ImportFailure("the source credentials cannot be opened: GANTRY_SECRET_KEY is not set") }
            do {
                sourceCredentials = try sealer.open(sealed)
            } catch {
                throw ImportFailure("the source credentials cannot be opened (GANTRY_SECRET_KEY changed?)")
            }
        }
        let source = RegistryEndpoint(baseURL: sourceURL, credentials: sourceCredentials)

        let top = try await registry.manifest(source, repository: job.sourceRepository, reference: job.sourceReference)
        var children: [CopiedManifest] = []
        if top.isIndex {
            let index: ImageIndex
            do {
                index = try JSONDecoder().decode(ImageIndex.self, from: Data(top.bytes))
            } catch {
                throw RegistryError.malformed("index \(job.sourceRepository)@\(top.digest) is not a valid index: \(error)")
            }
            for entry in index.manifests {
                let child = try await registry.manifest(source, repository: job.sourceRepository, reference: entry.digest.description)
                guard !child.isIndex else {
                    throw RegistryError.unsupportedMediaType("index \(top.digest) lists another index (\(entry.digest)); nested indexes are not imported")
                }
                let attestation = entry.annotations?["vnd.docker.reference.type"] == "attestation-manifest"
                    || entry.platform?.os == "unknown"
                children.append(CopiedManifest(manifest: child, platform: entry.platform, isAttestation: attestation))
            }
        }
        let platforms = top.isIndex
            ? children.map { ImportPlatformRecord(platform: $0.platform?.description, digest: $0.manifest.digest.description,
                                                  mediaType: $0.manifest.mediaType, scanned: !$0.isAttestation) }
            : [ImportPlatformRecord(platform: nil, digest: top.digest.description, mediaType: top.mediaType, scanned: true)]
        let platformsJSON = String(decoding: try JSONEncoder().encode(platforms), as: UTF8.self)
        try await update(job, """
            UPDATE ingestion.imports SET digest = \(top.digest.description), media_type = \(top.mediaType),
              platforms = \(platformsJSON)::jsonb, updated_at = now()
            WHERE id = \(job.id) AND status = 'copying'
            """)

        var progress = Progress()
        var done = Set<String>()
        for manifest in (top.isIndex ? children.map(\.manifest) : [top]) {
            for descriptor in try Self.blobs(of: manifest) where done.insert(descriptor.digest.description).inserted {
                let (transfer, bytes) = try await registry.transferBlob(
                    from: source, repository: job.sourceRepository, to: target, repository: job.targetRepository,
                    descriptor: descriptor)
                switch transfer {
                case .skipped: progress.skipped += 1
                case .mounted: progress.mounted += 1
                case .copied: progress.copied += 1
                }
                progress.bytesCopied += bytes
                try await report(job, progress)
            }
        }
        for child in children {
            try await registry.putManifest(target, repository: job.targetRepository, reference: child.manifest.digest.description,
                                           manifest: child.manifest)
        }
        try await registry.putManifest(target, repository: job.targetRepository,
                                       reference: job.targetTag ?? top.digest.description, manifest: top)
        let scanned = top.isIndex ? children.filter { !$0.isAttestation }.map(\.manifest.digest.description) : [top.digest.description]
        try await finish(job, registry: registration.registry, top: top.digest.description,
                         all: [top.digest.description] + children.map(\.manifest.digest.description), scanned: scanned,
                         progress: progress)
    }

    /// The blobs a manifest needs in the target: its config and layers, except foreign layers (with `urls`),
    /// which registries do not hold.
    static func blobs(of manifest: FetchedManifest) throws -> [Descriptor] {
        struct Shape: Decodable {
            var config: Descriptor?
            var layers: [Descriptor]?
        }
        let shape: Shape
        do {
            shape = try JSONDecoder().decode(Shape.self, from: Data(manifest.bytes))
        } catch {
            throw RegistryError.malformed("manifest \(manifest.digest) has unusable descriptors: \(error)")
        }
        return (shape.config.map { [$0] } ?? []) + (shape.layers ?? []).filter { ($0.urls ?? []).isEmpty }
    }

    private func report(_ job: Job, _ progress: Progress) async throws {
        try await update(job, """
            UPDATE ingestion.imports SET bytes_copied = \(progress.bytesCopied), blobs_mounted = \(progress.mounted),
              blobs_copied = \(progress.copied), blobs_skipped = \(progress.skipped), updated_at = now(),
              lease_until = now() + \(leaseSeconds)::float8 * interval '1 second'
            WHERE id = \(job.id) AND status = 'copying'
            """)
    }

    /// Records the images (scan-requested, so that the registry's own push events for them request nothing
    /// more), requests the scans and marks the job done, in one transaction.
    private func finish(_ job: Job, registry: RegisteredRegistry, top: String, all: [String], scanned: [String],
                        progress: Progress) async throws {
        let logger = runtime.logger
        let outbox = runtime.outbox
        // The job's tenant, which `copy` checked is the registry's.
        try await runtime.database.withTenant(job.tenantID, logger: logger) { connection in
            let requested = registry.planEnabled ? scanned : []
            try await connection.query("""
                INSERT INTO ingestion.images AS i (registry_id, repository, digest, tenant_id, subscription_id, last_pushed_at)
                SELECT \(registry.registryID), \(job.targetRepository), d, \(registry.tenantID), \(registry.subscriptionID), now()
                FROM unnest(\(all)::text[]) AS d
                ON CONFLICT (registry_id, repository, digest) DO UPDATE SET
                  last_pushed_at = EXCLUDED.last_pushed_at,
                  generation = i.generation + CASE WHEN i.deleted_at IS NOT NULL THEN 1 ELSE 0 END,
                  deleted_at = NULL
                """, logger: logger)
            if registry.planEnabled {
                try await connection.query("""
                    UPDATE ingestion.images SET scan_requested_generation = generation, scan_requested_at = now()
                    WHERE registry_id = \(registry.registryID) AND repository = \(job.targetRepository) AND digest = ANY(\(all)::text[])
                    """, logger: logger)
            }
            if let tag = job.targetTag {
                try await connection.query("""
                    INSERT INTO ingestion.image_tags (registry_id, repository, tag, digest, tenant_id)
                    VALUES (\(registry.registryID), \(job.targetRepository), \(tag), \(top), \(registry.tenantID))
                    ON CONFLICT (registry_id, repository, tag) DO UPDATE SET digest = EXCLUDED.digest, updated_at = now()
                    """, logger: logger)
            }
            let requests = requested.map { digest in
                let request = ScannerAPI.Components.Schemas.ScanRequest(
                    messageId: DistributionEvents.messageID("scan-request", registryID: registry.registryID,
                                                            eventID: "import/\(job.id.uuidString.lowercased())/\(digest)"),
                    tenantId: registry.tenantID.uuidString.lowercased(),
                    subscriptionId: registry.subscriptionID.uuidString.lowercased(),
                    registryId: registry.registryID.uuidString.lowercased(),
                    repository: job.targetRepository, digest: digest, tag: digest == top ? job.targetTag : nil,
                    trigger: ._import)
                return (messageID: request.messageId, payload: request)
            }
            if !requests.isEmpty {
                try await outbox.enqueue(batch: requests, to: .scanner, path: "/internal/v1/scans", on: connection, logger: logger)
            }
            try await connection.query("""
                UPDATE ingestion.imports SET status = 'done', reason = NULL, scan_requested = \(!requests.isEmpty),
                  bytes_copied = \(progress.bytesCopied), blobs_mounted = \(progress.mounted), blobs_copied = \(progress.copied),
                  blobs_skipped = \(progress.skipped), source_credentials_sealed = NULL, lease_until = NULL,
                  updated_at = now(), finished_at = now()
                WHERE id = \(job.id)
                """, logger: logger)
        }
        logger.info("import done", metadata: ["import": "\(job.id)", "digest": "\(top)", "bytes": "\(progress.bytesCopied)",
                                              "mounted": "\(progress.mounted)", "copied": "\(progress.copied)",
                                              "skipped": "\(progress.skipped)"])
    }

    /// Requeues a transient failure with backoff while attempts remain; otherwise marks the job failed.
    private func fail(_ job: Job, _ error: any Error) async {
        let reason = String(describing: error).prefix(1000)
        let retry = Self.isTransient(error) && job.attempts < maxAttempts
        // 2, 4, 8 … seconds with up to 50 % jitter, so replicas retrying one source do not synchronise.
        let delay = Double(1 << min(job.attempts, 10)) * Double.random(in: 1.0...1.5)
        runtime.logger.warning(retry ? "import attempt failed, will retry" : "import failed",
                               metadata: ["import": "\(job.id)", "attempt": "\(job.attempts)", "error": "\(reason)"])
        do {
            if retry {
                try await update(job, """
                    UPDATE ingestion.imports SET status = 'queued', reason = \(String(reason)), lease_until = NULL,
                      available_at = now() + \(delay)::float8 * interval '1 second', updated_at = now()
                    WHERE id = \(job.id) AND status = 'copying'
                    """)
            } else {
                try await update(job, """
                    UPDATE ingestion.imports SET status = 'failed', reason = \(String(reason)), lease_until = NULL,
                      source_credentials_sealed = NULL, updated_at = now(), finished_at = now()
                    WHERE id = \(job.id) AND status = 'copying'
                    """)
            }
        } catch {
            // The lease runs out and the job is taken again.
            runtime.logger.warning("could not record an import failure", metadata: ["import": "\(job.id)", "error": "\(error)"])
        }
    }

    /// Connection failures and busy or failing registries (429, 5xx) may pass; the rest will not (a source without
    /// TLS behind an https URL among them: `RegistryError.notTLS` says to use --insecure).
    static func isTransient(_ error: any Error) -> Bool {
        switch error {
        case RegistryError.transport: true
        case RegistryError.http(let status, _, _): status == 429 || status >= 500
        case is RegistryError, is ImportFailure: false
        default: true
        }
    }
}

/// A permanent import failure with its reason.
struct ImportFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// One element of `imports.platforms` (the API's `ImportPlatform`).
struct ImportPlatformRecord: Codable, Sendable {
    var platform: String?
    var digest: String
    var mediaType: String
    /// Whether a scan is requested for it (false for attestations); nil in rows written before it was
    /// recorded, where an `unknown/…` platform marks an attestation.
    var scanned: Bool?

    var isScanned: Bool { scanned ?? !(platform?.hasPrefix("unknown/") ?? false) }
}
