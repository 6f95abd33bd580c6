import Foundation
import GantryTesting
import Testing

/// Python peers and oracles of the notification tests, from PyPI (installed by `scripts/deps.sh`): aiosmtpd,
/// the CloudEvents SDK and slack-sdk. Without them a test is skipped locally and fails under CI (`CI=true`).
enum PythonPeers {
    /// `python3` when it imports every module in `modules`; otherwise nil after recording why.
    static func python(importing modules: [String]) -> String? {
        let check = "import " + modules.joined(separator: ", ")
        if let result = try? ProcessRunner.run("/usr/bin/env", ["python3", "-c", check], check: false), result.status == 0 {
            return "python3"
        }
        let message = "python3 cannot '\(check)' (scripts/deps.sh installs it)"
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            Issue.record(Comment(rawValue: message))
        } else {
            print("skipping: \(message)")
        }
        return nil
    }

    /// Runs `script` with `input` (JSON) on a file named by its first argument; returns its stdout as JSON.
    static func run(_ script: String, input: Any) throws -> Any {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-py-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let inputFile = directory.appendingPathComponent("input.json")
        try JSONSerialization.data(withJSONObject: input).write(to: inputFile)
        let result = try ProcessRunner.run("/usr/bin/env", ["python3", "-c", script, inputFile.path])
        return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
    }

    /// A receiver's verification written independently of Gantry's code, in Python's standard library:
    /// HMAC-SHA256 of `timestamp + "." + body`, compared in constant time, timestamp within 300 s.
    static let verifySignature = #"""
import hmac, hashlib, json, sys, time
request = json.load(open(sys.argv[1]))
body = bytes.fromhex(request["bodyHex"])
timestamp = request["timestamp"]
expected = "sha256=" + hmac.new(request["secret"].encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
fresh = abs(time.time() - int(timestamp)) <= 300
print(json.dumps({"valid": hmac.compare_digest(expected, request["signature"]) and fresh, "fresh": fresh}))
"""#

    /// Parses a structured-mode CloudEvent with the CloudEvents SDK (which validates the required attributes).
    static let parseCloudEvent = #"""
import json, sys
from cloudevents.core.bindings.http import HTTPMessage, from_http_event
request = json.load(open(sys.argv[1]))
event = from_http_event(HTTPMessage(headers=request["headers"], body=bytes.fromhex(request["bodyHex"])))
print(json.dumps({"specversion": event.get_specversion(), "id": event.get_id(), "source": event.get_source(),
                  "type": event.get_type(), "subject": event.get_subject(), "time": event.get_time().isoformat(),
                  "datacontenttype": event.get_datacontenttype(), "data": event.get_data()}))
"""#

    /// Parses a Slack message's blocks with slack-sdk's Block Kit models and validates them against Slack's limits.
    static let validateSlack = #"""
import json, sys
from slack_sdk.models.blocks import Block
message = json.load(open(sys.argv[1]))
blocks = Block.parse_all(message["blocks"])
for block in blocks:
    block.validate_json()
print(json.dumps({"types": [block.type for block in blocks], "count": len(blocks),
                  "roundTrip": [block.to_dict() for block in blocks] == message["blocks"]}))
"""#
}
