import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The outcome of one delivery attempt.
enum AttemptResult: Sendable, Equatable {
    /// Accepted (HTTP 2xx, or SMTP 250 after DATA).
    case delivered(statusCode: Int?)
    /// Failed in a way worth retrying (timeouts, refused connections, HTTP errors, SMTP 4xx).
    case failed(statusCode: Int?, error: String)
    /// Refused for good (SMTP 5xx, a target the SSRF guard refuses): dead at once.
    case rejected(statusCode: Int?, error: String)
}

/// Sends one e-mail to one recipient through the deployment's relay by running curl(1), whose libcurl SMTP client
/// speaks the protocol: EHLO, STARTTLS whenever the server offers it (`--ssl`; `--ssl-reqd` with
/// `GANTRY_SMTP_STARTTLS=required`), AUTH, MAIL FROM, RCPT TO, DATA with dot-stuffing. No Swift SMTP library is in
/// the package mirror, and libcurl's setopt is variadic C that Swift cannot call without a C shim; the binary is
/// in `scripts/deps.sh`'s packages. Options, credentials included, go to curl on standard input (`--config -`),
/// never on its command line where `ps` shows them.
struct CurlSMTPSender: Sendable {
    let settings: SMTPSettings

    func send(_ message: EmailMessage, to recipient: String, timeout: Duration) async -> AttemptResult {
        guard let curl = Self.curlPath else { return .failed(statusCode: nil, error: "curl is not installed (see scripts/deps.sh)") }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-smtp-\(UUID().uuidString)")
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            return .failed(statusCode: nil, error: "cannot create a scratch folder: \(error)")
        }
        defer { try? FileManager.default.removeItem(at: directory) }
        let messageFile = directory.appendingPathComponent("message.eml")
        let outFile = directory.appendingPathComponent("stdout")
        let errFile = directory.appendingPathComponent("stderr")
        do {
            try message.rendered.write(to: messageFile)
            _ = FileManager.default.createFile(atPath: outFile.path, contents: nil)
            _ = FileManager.default.createFile(atPath: errFile.path, contents: nil)
        } catch {
            return .failed(statusCode: nil, error: "cannot write the message: \(error)")
        }
        let seconds = max(1, Int(timeout.seconds.rounded(.up)))
        var options: [(String, String?)] = [
            // The URL's path is the EHLO name curl announces: the sender's domain.
            ("url", settings.url.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + "/"
                + (settings.from.split(separator: "@").last.map(String.init) ?? "localhost")),
            ("mail-from", settings.from),
            ("mail-rcpt", recipient),
            ("upload-file", messageFile.path),
            (settings.startTLS == .required ? "ssl-reqd" : "ssl", nil),
            ("connect-timeout", String(seconds)),
            ("max-time", String(seconds)),
            ("silent", nil), ("show-error", nil), ("verbose", nil),
            ("write-out", "%{response_code}"),
        ]
        if let caFile = settings.caFile { options.append(("cacert", caFile)) }
        if let username = settings.username { options.append(("user", username + ":" + (settings.password ?? ""))) }
        let config = options.map { name, value in value.map { "\(name) = \"\(Self.quoted($0))\"" } ?? name }
            .joined(separator: "\n") + "\n"
        let status: Int32
        do {
            status = try await Self.run(curl, config: Data(config.utf8), stdout: outFile, stderr: errFile,
                                        killAfter: timeout + .seconds(5))
        } catch {
            return .failed(statusCode: nil, error: "curl could not run: \(error)")
        }
        let code = Int((try? String(contentsOf: outFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "")
            .flatMap { $0 == 0 ? nil : $0 }
        if status == 0 { return .delivered(statusCode: code) }
        let stderr = (try? String(contentsOf: errFile, encoding: .utf8)) ?? ""
        let lines = stderr.split(whereSeparator: \.isNewline).map(String.init)
        // The server's own words for the code curl failed on ("< 550 5.1.1 … rejected"); else curl's summary.
        let reply = code.flatMap { code in
            code >= 400 ? lines.last { $0.hasPrefix("< \(code)") }.map { String($0.dropFirst(2)) } : nil
        }
        let summary = lines.last { $0.hasPrefix("curl: (") } ?? "curl exited with status \(status)"
        let error = [reply.map { "SMTP \($0)" }, summary].compactMap { $0 }.joined(separator: " — ")
        if let code, (500..<600).contains(code) { return .rejected(statusCode: code, error: String(error.prefix(1000))) }
        return .failed(statusCode: code, error: String(error.prefix(1000)))
    }

    /// curl's config-file quoting: backslash and double quote escaped; line breaks cannot occur in a value.
    private static func quoted(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "").replacingOccurrences(of: "\r", with: "")
    }

    static let curlPath: String? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return (path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/local/bin"])
            .map { $0 + "/curl" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    /// Runs `executable --config -` with `config` on standard input; terminates it after `killAfter`.
    private static func run(_ executable: String, config: Data, stdout: URL, stderr: URL, killAfter: Duration) async throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["--config", "-"]
        let input = Pipe()
        let out = try FileHandle(forWritingTo: stdout)
        let err = try FileHandle(forWritingTo: stderr)
        defer {
            try? out.close()
            try? err.close()
        }
        process.standardInput = input
        process.standardOutput = out
        process.standardError = err
        return try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { finished in continuation.resume(returning: finished.terminationStatus) }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: error)
                return
            }
            input.fileHandleForWriting.write(config)
            try? input.fileHandleForWriting.close()
            // curl's own --max-time ends it first; this is the backstop for a process that does not exit. SIGKILL,
            // because a child spawned from a dispatch thread inherits that thread's blocked SIGTERM.
            let pid = process.processIdentifier
            Task {
                try? await Task.sleep(for: killAfter)
                if process.isRunning { kill(pid, SIGKILL) }
            }
        }
    }
}
