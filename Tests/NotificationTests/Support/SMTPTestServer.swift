import Foundation
#if canImport(Glibc)
import Glibc
#endif
import GantryTesting

/// A real SMTP server for the e-mail tests: aiosmtpd (PyPI) on 127.0.0.1, optionally offering STARTTLS with a
/// self-signed certificate made by openssl(1). It rejects recipients starting with `reject` (550, permanent) and
/// `tempfail` (451, transient), and records each accepted message as parsed by Python's `email` package.
final class SMTPTestServer: Sendable {
    struct Message: Sendable {
        var mailFrom: String
        var recipients: [String]
        var tls: Bool
        var subject: String
        var text: String
        var headers: [String: String]
    }

    let port: Int
    /// The certificate to trust (`GANTRY_SMTP_CA_FILE`) when STARTTLS is offered.
    let caFile: String?
    private let directory: URL
    private let output: URL
    private let process: Process
    private let input: Pipe

    static let script = #"""
import json, os, sys, ssl, email, email.policy
from aiosmtpd.controller import Controller
port, output = int(sys.argv[1]), sys.argv[2]
class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject"):
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if address.startswith("tempfail"):
            return "451 4.3.0 <%s>: Temporary failure, try again later" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"
    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        record = {"mailFrom": envelope.mail_from, "recipients": envelope.rcpt_tos, "tls": session.ssl is not None,
                  "subject": str(message["subject"]), "text": message.get_content(),
                  "headers": {k.lower(): str(v) for k, v in message.items()}}
        with open(output, "a") as f:
            f.write(json.dumps(record) + "\n")
        return "250 Message accepted"
context = None
if len(sys.argv) > 4:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(sys.argv[3], sys.argv[4])
controller = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=context)
controller.start()
open(output + ".ready", "w").close()
# Runs until the test closes standard input (or dies), whatever wrappers stand between it and python.
sys.stdin.buffer.read()
os._exit(0)
"""#

    /// Starts the server; with `startTLS`, it offers STARTTLS.
    init(startTLS: Bool) async throws {
        port = try FreePort.next()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-smtp-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        output = directory.appendingPathComponent("messages.jsonl")
        var arguments = ["python3", "-c", Self.script, String(port), output.path]
        if startTLS {
            let cert = directory.appendingPathComponent("cert.pem").path
            let key = directory.appendingPathComponent("key.pem").path
            try ProcessRunner.run("/usr/bin/openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                                                       "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"])
            arguments += [cert, key]
            caFile = cert
        } else {
            caFile = nil
        }
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        input = Pipe()
        process.standardInput = input
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let ready = output.path + ".ready"
        let deadline = ContinuousClock.now + .seconds(20)
        while !FileManager.default.fileExists(atPath: ready) {
            guard process.isRunning, ContinuousClock.now < deadline else {
                stop()
                throw TestServiceError("aiosmtpd did not start on port \(port)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    var url: String { "smtp://127.0.0.1:\(port)" }

    /// The messages accepted so far.
    func messages() throws -> [Message] {
        guard let text = try? String(contentsOf: output, encoding: .utf8) else { return [] }
        return try text.split(separator: "\n").map { line in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
            return Message(mailFrom: object["mailFrom"] as? String ?? "", recipients: object["recipients"] as? [String] ?? [],
                           tls: object["tls"] as? Bool ?? false, subject: object["subject"] as? String ?? "",
                           text: object["text"] as? String ?? "", headers: object["headers"] as? [String: String] ?? [:])
        }
    }

    /// Stops the server: end of its standard input, then SIGKILL (a child spawned from a dispatch thread inherits
    /// its blocked SIGTERM); polled rather than `waitUntilExit()`, which spins a run loop.
    func stop() {
        try? input.fileHandleForWriting.close()
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            let deadline = ContinuousClock.now + .seconds(5)
            while process.isRunning && ContinuousClock.now < deadline { usleep(10_000) }
        }
        try? FileManager.default.removeItem(at: directory)
    }
}
