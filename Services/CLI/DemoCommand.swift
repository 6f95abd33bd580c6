import ArgumentParser
import AsyncHTTPClient
import BillingAPI
import Crypto
import DiscoveryAPI
import FindingsPolicyAPI
import Foundation
import GantryRuntime
import Hummingbird
import NotificationAPI
import ScannerAPI

/// `gantry demo`: the main job end to end on real input. Registers a demo tenant, subscription and
/// registry (reusing them on later runs), imports the Alpine secdb from the corpus, pushes
/// `images/alpine-3.7.3.oci.tar` with skopeo, waits for the findings and prints them with the
/// signed webhook delivery and the bill.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo", abstract: "Run the main job end to end against the running services.")

    @Option(help: "The test corpus (shared/corpus).")
    var corpus: String = "../shared/corpus"

    @Option(help: "The registry's login server (host:port), spoken to over plain HTTP.")
    var registry: String = "127.0.0.1:5000"

    @Option(help: "The image archive to push, relative to the corpus.")
    var image: String = "images/alpine-3.7.3.oci.tar"

    @Option(help: "Repository and tag to push to.")
    var reference: String = "demo/alpine:3.7.3"

    @Option(help: "Port of the demo's own webhook receiver on 127.0.0.1.")
    var webhookPort: Int = 8090

    @Option(help: "Seconds to wait for findings.")
    var timeout: Int = 180

    func run() async throws {
        let connection = try await ServiceConnection.fromEnvironment()
        print("==> waiting for the six services")
        try await connection.waitUntilReady()

        let receiver = WebhookReceiver(secret: try demoWebhookSecret(connection))
        let receiverTask = Task { try await receiver.run(port: webhookPort) }
        defer { receiverTask.cancel() }

        let setup = try await DemoSetup.ensure(connection: connection, registry: registry,
                                               webhookURL: "http://127.0.0.1:\(webhookPort)/webhook",
                                               webhookSecret: receiver.secret)
        print("==> tenant \(setup.tenantID), subscription \(setup.subscriptionID) (plan enabled), registry \(registry) (\(setup.registryID))")

        print("==> importing the Alpine secdb from \(corpus)/3-vuln-feeds/alpine")
        let imports = try await ImportAlpineSecDBCommand.importFiles(paths: ["\(corpus)/3-vuln-feeds/alpine"], connection: connection)
        let advisories = imports.reduce(0) { $0 + $1.advisories }
        print("    \(imports.count) documents, \(advisories) advisories (\(imports.filter(\.changed).count) changed)")

        print("==> pushing \(image) to \(registry)/\(reference) with skopeo")
        let digest = try Skopeo.push(archive: "\(corpus)/\(image)", to: "\(registry)/\(reference)")
        let pushed = Date()
        let clock = ContinuousClock.now
        print("    pushed \(digest)")

        let assessment = try await waitForAssessment(connection: connection, setup: setup, digest: digest)
        let elapsed = ContinuousClock.now - clock
        // An assessment is of a digest, whichever repository it was last scanned in; name the one pushed here.
        let repository = reference.split(separator: ":").first.map(String.init) ?? reference
        // A rerun pushes the same digest again. Ingestion records the push but does not scan a digest it already
        // sent for scanning (one scan per digest; rescans are weekly or on feed changes), so the assessment from
        // the earlier run is the current one.
        let when = assessment.timeGenerated.addingTimeInterval(1) < pushed
            ? "scanned earlier, at \(assessment.timeGenerated.formatted(.iso8601)): a known digest is not scanned again on push"
            : String(format: "%.2f s after the push", Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        print("==> assessment of \(registry)/\(repository)@\(digest): \(assessment.status.code.rawValue) (\(when))")
        if let os = assessment.operatingSystem { print("    OS: \(os.prettyName ?? os.id)") }
        for finding in assessment.findings {
            print("    \(finding.vulnerabilityId)  \(finding.packageName) \(finding.installedVersion)  fixed in \(finding.fixedVersion ?? "no fix")  severity \(finding.severity.rawValue)  patchable \(finding.patchable)")
        }

        if assessment.status.code == .unhealthy {
            try await printDelivery(connection: connection, setup: setup, digest: digest, receiver: receiver)
        }
        try await printUsage(connection: connection, setup: setup)
    }

    /// The webhook secret, derived from the deployment key so that later runs verify earlier deliveries.
    private func demoWebhookSecret(_ connection: ServiceConnection) throws -> String {
        let key = try GantryConfiguration(service: .notification).serviceKey
        let mac = HMAC<SHA256>.authenticationCode(for: Data("gantry-demo-webhook".utf8), using: SymmetricKey(data: Data(key.utf8)))
        return Data(mac).base64EncodedString()
    }

    private func waitForAssessment(connection: ServiceConnection, setup: DemoSetup,
                                   digest: String) async throws -> FindingsPolicyAPI.Components.Schemas.Assessment {
        let (url, transport, middlewares) = connection.clientParts(.findingsPolicy)
        let client = FindingsPolicyAPI.Client(serverURL: url, transport: transport, middlewares: middlewares)
        let deadline = ContinuousClock.now + .seconds(timeout)
        print("==> waiting for the scan (up to \(timeout) s)")
        while ContinuousClock.now < deadline {
            let output = try await client.getAssessment(path: .init(tenantId: setup.tenantID, subscriptionId: setup.subscriptionID,
                                                                    imageDigest: digest))
            if case .ok(let ok) = output { return try ok.body.json }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw CLIError("no assessment for \(digest) within \(timeout) s; see .run/logs/gantry-scanner.log")
    }

    private func printDelivery(connection: ServiceConnection, setup: DemoSetup, digest: String,
                               receiver: WebhookReceiver) async throws {
        let (url, transport, middlewares) = connection.clientParts(.notification)
        let client = NotificationAPI.Client(serverURL: url, transport: transport, middlewares: middlewares)
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let deliveries = try await client.listDeliveries(path: .init(tenantId: setup.tenantID, subscriptionId: setup.subscriptionID))
            if case .ok(let ok) = deliveries,
               let delivery = try ok.body.json.items.first(where: { $0.alertId.hasSuffix(digest) && $0.status == .delivered }) {
                print("==> webhook delivery \(delivery.id) to \(delivery.url): \(delivery.status.rawValue) after \(delivery.attempts) attempt(s), HTTP \(delivery.lastStatusCode.map(String.init) ?? "-")")
                if let received = await receiver.received.first {
                    print("    received by the demo receiver, signature \(received.signatureValid ? "verified" : "INVALID"): \(received.body.prefix(300))…")
                } else {
                    print("    (delivered in an earlier run: an unchanged image raises no second alert)")
                }
                return
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        throw CLIError("the webhook delivery for \(digest) did not complete within 60 s; see .run/logs/gantry-notification.log")
    }

    private func printUsage(connection: ServiceConnection, setup: DemoSetup) async throws {
        let (url, transport, middlewares) = connection.clientParts(.billing)
        let client = BillingAPI.Client(serverURL: url, transport: transport, middlewares: middlewares)
        // The usage message travels through the scanner's outbox; give it a moment.
        try await Task.sleep(for: .milliseconds(500))
        if case .ok(let ok) = try await client.getUsage(path: .init(tenantId: setup.tenantID, subscriptionId: setup.subscriptionID)) {
            let usage = try ok.body.json
            print("==> billing: \(usage.billableImages) billable image(s), \(usage.amount) \(usage.currency)")
        }
    }
}

/// Runs skopeo to push an OCI archive (CORPUS.md: `skopeo copy --dest-tls-verify=false oci-archive:FILE docker://…`).
enum Skopeo {
    /// - Returns: the pushed manifest's digest.
    /// - Throws: `CLIError` with skopeo's output when it fails.
    static func push(archive: String, to destination: String) throws -> String {
        let digestFile = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-demo-\(UUID().uuidString).digest")
        defer { try? FileManager.default.removeItem(at: digestFile) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/skopeo")
        process.arguments = ["copy", "--quiet", "--dest-tls-verify=false", "--digestfile", digestFile.path,
                             "oci-archive:\(archive)", "docker://\(destination)"]
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let stderr = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CLIError("skopeo failed: \(String(decoding: stderr, as: UTF8.self))")
        }
        return try String(contentsOf: digestFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
