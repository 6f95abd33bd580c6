import Foundation

/// Runs `python3` as an independent reader of test inputs (its `email.parser`, `json`, `tarfile`), so
/// that expected values in language-cataloger tests come from another implementation, not from ours.
enum PythonOracle {
    struct Failed: Error, CustomStringConvertible {
        let description: String
    }

    /// The JSON value `script` prints to standard output when run with `arguments`.
    /// - Throws: `Failed` when python3 cannot be started, exits non-zero or prints something else.
    static func json(_ script: String, arguments: [String] = []) throws -> Any {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script] + arguments
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        // Read before waiting, so a large output cannot fill the pipe and block the child.
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failed(description: "python3 exited \(process.terminationStatus): \(errorText)")
        }
        do {
            return try JSONSerialization.jsonObject(with: data)
        } catch {
            throw Failed(description: "python3 printed no JSON: \(String(decoding: data.prefix(500), as: UTF8.self))")
        }
    }
}
