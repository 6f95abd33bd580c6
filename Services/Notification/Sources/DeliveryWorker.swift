import AsyncHTTPClient
import Foundation
import RegistryClient
import GantryRuntime
import Logging
import NIOCore
import NIOHTTP1
import NotificationAPI
import PostgresNIO
import ServiceLifecycle

/// Delivers pending deliveries (notification.yaml, "Delivery").
///
/// Each pass leases due deliveries (`leased_until`) in a short transaction, at most one per channel and none of a
/// channel that has one in flight, so a hanging or failing receiver holds up only its own channel; attempts then run
/// outside any transaction, up to `concurrency` at once, each bounded by the attempt timeout. A replica that dies
/// mid-attempt leaves the lease to expire and the delivery is attempted again (receivers deduplicate by
/// `X-Gantry-Delivery`). Failures are retried with exponential backoff until `give_up_at`, then dead.
struct DeliveryWorker: Service {
    let runtime: ServiceRuntime
    let settings: NotificationSettings
    /// Every receiver connection goes to an address the deployment's SSRF guard approved for that attempt.
    let clients: PinnedHTTPClients
    /// Built once; the error (no `GANTRY_SECRET_KEY`) is reported by each delivery that needs a secret.
    let sealer: Result<SecretSealer, any Error>
    var pollInterval: Duration = .milliseconds(100)

    init(runtime: ServiceRuntime, settings: NotificationSettings, clients: PinnedHTTPClients) {
        self.runtime = runtime
        self.settings = settings
        self.clients = clients
        sealer = Result { try SecretSealer(configuration: runtime.configuration) }
    }

    private var logger: Logger { runtime.logger }

    /// A leased delivery with what it takes to send it.
    struct Job: Sendable {
        var id: UUID
        var attempts: Int
        var target: String
        var minSeverity: String?
        var channel: Channel
        var payload: String
        var alertReceivedAt: Date
        var giveUpAt: Date
    }

    func run() async throws {
        let slots = Slots(capacity: settings.concurrency)
        await runtime.readiness.waitUntilReady()
        do {
            try await sealLegacySecrets()
        } catch {
            runtime.logger.error("could not seal channel secrets stored in clear", metadata: ["error": "\(error)"])
        }
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                while !Task.isCancelled {
                    do {
                        let free = await slots.waitForFree()
                        let jobs = try await lease(limit: free, busyChannels: await slots.busyChannels)
                        for job in jobs {
                            await slots.take(channel: job.channel.id)
                            group.addTask {
                                await attempt(job)
                                await slots.release(channel: job.channel.id)
                            }
                        }
                        // Nothing due: wait for the poll interval, or less when an attempt frees its channel.
                        if jobs.isEmpty { await slots.nap(for: pollInterval) }
                        try Task.checkCancellation()
                    } catch is CancellationError {
                        return
                    } catch {
                        logger.warning("delivery pass failed", metadata: ["error": "\(error)"])
                        try? await Task.sleep(for: .seconds(1))
                    }
                }
            }
        }
    }

    /// Leases up to `limit` due deliveries, the oldest due first, one per channel, skipping busy channels.
    /// The claim spans every tenant's deliveries, so it runs with system access; recording an attempt is the
    /// tenant's (`record`).
    func lease(limit: Int, busyChannels: [UUID]) async throws -> [Job] {
        let leaseSeconds = settings.attemptTimeout.seconds + 30
        let logger = self.logger
        return try await runtime.database.withSystemAccess(logger: logger) { connection in
            let rows = try await connection.query("""
                WITH due AS (
                  SELECT id, row_number() OVER (PARTITION BY channel_id ORDER BY next_attempt_at, id) AS rank
                  FROM notification.deliveries d
                  WHERE status = 'pending' AND next_attempt_at <= now() AND (leased_until IS NULL OR leased_until <= now())
                    AND NOT (channel_id = ANY (\(busyChannels)))
                    AND NOT EXISTS (SELECT 1 FROM notification.deliveries x
                                    WHERE x.channel_id = d.channel_id AND x.status = 'pending' AND x.leased_until > now())
                ), picked AS (
                  SELECT d.id FROM notification.deliveries d JOIN due ON due.id = d.id
                  WHERE due.rank = 1 AND d.status = 'pending' AND (d.leased_until IS NULL OR d.leased_until <= now())
                  ORDER BY d.next_attempt_at LIMIT \(limit) FOR UPDATE OF d SKIP LOCKED
                )
                UPDATE notification.deliveries d SET leased_until = now() + make_interval(secs => \(leaseSeconds))
                FROM picked, notification.channels c, notification.alerts a
                WHERE d.id = picked.id AND c.id = d.channel_id AND a.message_id = d.alert_id
                RETURNING d.id, d.attempts, d.target, d.min_severity, d.give_up_at, a.payload, a.created_at,
                          c.id, c.tenant_id, c.subscription_id, c.type, c.name, c.url, c.secret, c.recipients, c.created_at
                """, logger: logger)
            var jobs: [Job] = []
            for try await (id, attempts, target, severity, giveUp, payload, received, channelID, tenant, subscription, type, name, url,
                           secret, recipients, created) in rows.decode(
                (UUID, Int, String, String?, Date, String, Date, UUID, UUID, UUID, String, String, String?, String?, [String], Date).self) {
                let channel = Channel(id: channelID, tenantID: tenant, subscriptionID: subscription,
                                      kind: Channel.Kind(rawValue: type) ?? .webhook, name: name, url: url, secret: secret,
                                      recipients: recipients, createdAt: created)
                jobs.append(Job(id: id, attempts: attempts, target: target, minSeverity: severity, channel: channel,
                                payload: payload, alertReceivedAt: received, giveUpAt: giveUp))
            }
            return jobs
        }
    }

    /// One attempt, then its record: the attempt row, and the delivery delivered, due again later, or dead.
    func attempt(_ job: Job) async {
        let started = Date()
        let clock = ContinuousClock.now
        let result = await send(job)
        let elapsed = ContinuousClock.now - clock
        let attempt = job.attempts + 1
        do {
            try await record(result, of: job, attempt: attempt, started: started,
                             durationMs: Int(elapsed.seconds * 1000))
        } catch {
            // The lease runs out and the delivery is attempted again.
            logger.error("could not record a delivery attempt", metadata: ["delivery": "\(job.id)", "error": "\(error)"])
        }
    }

    private func record(_ result: AttemptResult, of job: Job, attempt: Int, started: Date, durationMs: Int) async throws {
        let (outcome, code, error): (String, Int?, String?) = switch result {
        case .delivered(let code): ("delivered", code, nil)
        case .failed(let code, let error): ("failed", code, error)
        case .rejected(let code, let error): ("rejected", code, error)
        }
        let delay = settings.backoff(afterAttempt: attempt)
        let logger = self.logger
        let status = try await runtime.database.withTenant(job.channel.tenantID, logger: logger) { connection -> String in
            try await connection.query("""
                INSERT INTO notification.delivery_attempts (delivery_id, attempt, started_at, duration_ms, outcome, status_code, error)
                VALUES (\(job.id), \(attempt), \(started), \(durationMs), \(outcome), \(code), \(error))
                ON CONFLICT DO NOTHING
                """, logger: logger)
            // Failed: due again after the backoff, but never after give_up_at; at or past it, dead.
            let rows = try await connection.query("""
                UPDATE notification.deliveries SET
                  attempts = \(attempt), last_status_code = \(code), last_error = \(error), last_attempt_at = \(started),
                  leased_until = NULL,
                  status = CASE WHEN \(outcome) = 'delivered' THEN 'delivered'
                                WHEN \(outcome) = 'rejected' OR now() >= give_up_at THEN 'dead' ELSE 'pending' END,
                  delivered_at = CASE WHEN \(outcome) = 'delivered' THEN now() END,
                  next_attempt_at = least(give_up_at, now() + make_interval(secs => \(delay)))
                WHERE id = \(job.id) AND status = 'pending'
                RETURNING status
                """, logger: logger)
            var status = "gone"
            for try await value in rows.decode(String.self) { status = value }
            return status
        }
        var metadata: Logger.Metadata = ["delivery": "\(job.id)", "channel": "\(job.channel.id)", "attempt": "\(attempt)",
                                         "status": "\(status)"]
        if let error { metadata["error"] = "\(error)" }
        if outcome == "delivered" {
            logger.info("delivered", metadata: metadata)
        } else {
            logger.warning("delivery attempt failed", metadata: metadata)
        }
    }

    /// Renders the alert for the channel and sends it.
    func send(_ job: Job) async -> AttemptResult {
        let alert: Components.Schemas.Alert
        do {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            alert = try decoder.decode(Components.Schemas.Alert.self, from: Data(job.payload.utf8))
        } catch {
            return .rejected(statusCode: nil, error: "the stored alert cannot be read: \(error)")
        }
        let presentation = AlertPresentation(alert: alert, floor: job.minSeverity.flatMap(FindingSeverity.init(name:)))
        let kind = presentation.kind.rawValue
        do {
            switch job.channel.kind {
            case .email:
                guard let smtp = settings.smtp else {
                    return .failed(statusCode: nil, error: "no SMTP relay is configured (GANTRY_SMTP_URL)")
                }
                let recipient = String(job.target.dropFirst("mailto:".count))
                let (subject, text) = ChannelPayloads.email(presentation)
                let domain = smtp.from.split(separator: "@").last.map(String.init) ?? "gantry.invalid"
                let message = EmailMessage(from: smtp.from, to: recipient, subject: subject, text: text,
                                           messageID: "\(job.id.uuidString.lowercased())@\(domain)", date: Date(),
                                           extraHeaders: [("X-Gantry-Event", kind),
                                                          ("X-Gantry-Delivery", job.id.uuidString.lowercased())])
                return await CurlSMTPSender(settings: smtp).send(message, to: recipient, timeout: settings.attemptTimeout)
            case .webhook:
                return await post(job, body: try ChannelPayloads.webhook(presentation), contentType: "application/json", event: kind)
            case .slack:
                return await post(job, body: try ChannelPayloads.slack(presentation), contentType: "application/json", event: kind)
            case .teams:
                return await post(job, body: try ChannelPayloads.teams(presentation), contentType: "application/json", event: kind)
            case .cloudevents:
                return await post(job, body: try ChannelPayloads.cloudEvent(presentation, receivedAt: job.alertReceivedAt),
                                  contentType: ChannelPayloads.cloudEventContentType, event: kind)
            }
        } catch {
            return .rejected(statusCode: nil, error: "the alert cannot be rendered: \(error)")
        }
    }

    /// Seals channel secrets stored in clear by releases before sealing existed; returns how many.
    @discardableResult
    func sealLegacySecrets() async throws -> Int {
        let sealer = try self.sealer.get()
        return try await runtime.database.withSystemAccess(logger: runtime.logger) { connection in
            let rows = try await connection.query("""
                SELECT id, secret FROM notification.channels WHERE secret IS NOT NULL AND secret NOT LIKE 'sealed:%' FOR UPDATE
                """, logger: runtime.logger)
            var legacy: [(UUID, String)] = []
            for try await row in rows.decode((UUID, String).self) { legacy.append(row) }
            for (id, clear) in legacy {
                try await connection.query("""
                    UPDATE notification.channels SET secret = \(try sealer.seal(clear, context: Channel.secretContext(id))) WHERE id = \(id)
                    """, logger: runtime.logger)
            }
            return legacy.count
        }
    }

    /// POSTs `body` to the delivery's URL, signed when the channel has a signing secret, within the attempt timeout.
    /// The URL of a Slack or Teams channel is its sealed secret (the delivery's `target` is only the masked form).
    private func post(_ job: Job, body: Data, contentType: String, event: String) async -> AttemptResult {
        var target = job.target
        if job.channel.urlIsSecret {
            guard let stored = job.channel.secret else { return .rejected(statusCode: nil, error: "the channel has no URL") }
            do {
                target = try sealer.get().open(stored, context: Channel.secretContext(job.channel.id))
            } catch {
                return .rejected(statusCode: nil, error: "the channel's URL cannot be opened: \(error)")
            }
        }
        // The guard ran when the channel was made; run it again in case the deployment's settings changed since.
        guard let url = URL(string: target), url.host != nil else {
            return .rejected(statusCode: nil, error: "'\(job.target)' is not a URL")
        }
        // The deployment's SSRF guard judges the literal or what the name resolves to now (a public name pointing at
        // a metadata or private address is refused); the connection then goes to exactly the approved address, so a
        // second DNS answer cannot redirect it.
        let client: HTTPClient
        do {
            client = try clients.client(for: target)
        } catch let refusal as AddressRefusal {
            return .rejected(statusCode: nil, error: "refused by the SSRF guard: \(refusal.reason)")
        } catch {
            return .failed(statusCode: nil, error: "\(error)")
        }
        var request = HTTPClientRequest(url: target)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: contentType)
        request.headers.add(name: "User-Agent", value: "Gantry-Notification/1")
        request.headers.add(name: "X-Gantry-Delivery", value: job.id.uuidString.lowercased())
        request.headers.add(name: "X-Gantry-Event", value: event)
        if job.channel.signs, let stored = job.channel.secret {
            let secret: String
            do {
                secret = try sealer.get().open(stored, context: Channel.secretContext(job.channel.id))
            } catch {
                return .rejected(statusCode: nil, error: "the channel's signing secret cannot be opened: \(error)")
            }
            let timestamp = Int(Date().timeIntervalSince1970)
            request.headers.add(name: WebhookSignature.timestampHeader, value: String(timestamp))
            request.headers.add(name: WebhookSignature.header, value: WebhookSignature.sign(timestamp: timestamp, body: body, secret: secret))
        }
        request.body = .bytes(ByteBuffer(bytes: body))
        let prepared = request
        let timeout = settings.attemptTimeout
        do {
            return try await withDeadline(timeout) {
                let response = try await client.execute(prepared, timeout: .nanoseconds(Int64(timeout.seconds * 1e9)))
                let reply = try await response.body.collect(upTo: 64 * 1024)
                let code = Int(response.status.code)
                if (200..<300).contains(code) { return .delivered(statusCode: code) }
                let text = String(buffer: reply).trimmingCharacters(in: .whitespacesAndNewlines)
                return .failed(statusCode: code, error: "HTTP \(code)" + (text.isEmpty ? "" : ": \(text.prefix(300))"))
            }
        } catch let error as HTTPClientError where [.deadlineExceeded, .readTimeout, .connectTimeout].contains(error) {
            return .failed(statusCode: nil, error: "no complete answer within \(Int(timeout.seconds * 1000)) ms (timed out: \(error))")
        } catch is DeadlineExceeded {
            return .failed(statusCode: nil, error: "no complete answer within \(Int(timeout.seconds * 1000)) ms (timed out)")
        } catch {
            return .failed(statusCode: nil, error: "\(error)")
        }
    }
}

/// Thrown by `withDeadline` when the operation took too long.
struct DeadlineExceeded: Error {}

/// Runs `operation`, cancelling it and throwing `DeadlineExceeded` after `limit`.
func withDeadline<T: Sendable>(_ limit: Duration, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: limit)
            throw DeadlineExceeded()
        }
        defer { group.cancelAll() }
        guard let first = try await group.next() else { throw DeadlineExceeded() }
        return first
    }
}

/// Attempt slots of one replica, the channels with an attempt in flight, and the worker's nap between passes,
/// cut short when an attempt ends (its channel's next delivery may be due).
actor Slots {
    private let capacity: Int
    private var inFlight: [UUID: Int] = [:]
    private var used = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private var sleeper: CheckedContinuation<Void, Never>?
    private var woken = false

    init(capacity: Int) { self.capacity = capacity }

    var busyChannels: [UUID] { Array(inFlight.keys) }

    /// Waits until at least one slot is free; returns how many are.
    func waitForFree() async -> Int {
        while used >= capacity {
            await withCheckedContinuation { waiters.append($0) }
        }
        return capacity - used
    }

    func take(channel: UUID) {
        used += 1
        inFlight[channel, default: 0] += 1
    }

    func release(channel: UUID) {
        used -= 1
        if let count = inFlight[channel], count > 1 { inFlight[channel] = count - 1 } else { inFlight[channel] = nil }
        let resumed = waiters
        waiters = []
        for waiter in resumed { waiter.resume() }
        wake()
    }

    /// Returns after `duration`, or sooner when an attempt ends.
    func nap(for duration: Duration) async {
        if woken {
            woken = false
            return
        }
        await withCheckedContinuation { continuation in
            sleeper = continuation
            Task {
                try? await Task.sleep(for: duration)
                await self.wake()
            }
        }
        woken = false
    }

    private func wake() {
        if let sleeper {
            self.sleeper = nil
            sleeper.resume()
        } else {
            woken = true
        }
    }
}
