import Foundation

/// Runs a command line tool to completion and captures its output, for test helpers.
package enum ProcessRunner {
    /// What a finished process left.
    package struct Result: Sendable {
        package var status: Int32
        package var stdout: String
        package var stderr: String
    }

    /// A tool that could not be started or exited non-zero.
    package struct Failure: Error, CustomStringConvertible {
        package let command: String
        package let status: Int32?
        package let stderr: String
        package var description: String {
            if let status {
                "\(command) exited with status \(status): \(stderr.trimmingCharacters(in: .whitespacesAndNewlines))"
            } else {
                "\(command) could not be started: \(stderr)"
            }
        }
    }

    /// Runs `executable` with `arguments`, output to temporary files (pipes could fill and block).
    /// - Throws: `Failure` when it cannot start, or exits non-zero and `check` is true.
    @discardableResult
    package static func run(_ executable: String, _ arguments: [String], check: Bool = true) throws -> Result {
        let command = ([executable] + arguments).joined(separator: " ")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let outURL = directory.appendingPathComponent("stdout")
        let errURL = directory.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let out = try FileHandle(forWritingTo: outURL)
        let err = try FileHandle(forWritingTo: errURL)
        defer {
            try? out.close()
            try? err.close()
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw Failure(command: command, status: nil, stderr: String(describing: error))
        }
        process.waitUntilExit()
        let result = Result(status: process.terminationStatus,
                            stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
                            stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
        if check, result.status != 0 {
            throw Failure(command: command, status: result.status, stderr: result.stderr)
        }
        return result
    }
}
