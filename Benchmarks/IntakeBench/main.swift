import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

// gantry-intake-bench: a closed-loop load generator for ingestion's webhook intake
// (`POST /v1/events/distribution`). `--connections` clients each send envelopes of `--events` push events
// with fresh event IDs (so every event is recorded, never a duplicate), one after another, for
// `--seconds` after a warm-up; then prints one line:
//   <events/s> <requests/s> <p50 ms> <p90 ms> <p99 ms> <max ms> <requests> <errors>
// Digests cycle over `--digests` values, as repeated pushes of a fleet of images would.

struct Options {
    var url = "http://127.0.0.1:8082/v1/events/distribution"
    var authorization: String?
    var host = "bench.example.com"
    var connections = 32
    var eventsPerRequest = 1
    var seconds = 10.0
    var warmup = 2.0
    var digests = 100

    static func parse(_ arguments: [String]) -> Options {
        var options = Options()
        var iterator = arguments.dropFirst().makeIterator()
        while let flag = iterator.next() {
            guard let value = iterator.next() else { fail("\(flag) needs a value") }
            switch flag {
            case "--url": options.url = value
            case "--authorization": options.authorization = value
            case "--host": options.host = value
            case "--connections": options.connections = number(flag, value)
            case "--events": options.eventsPerRequest = number(flag, value)
            case "--seconds": options.seconds = Double(number(flag, value))
            case "--warmup": options.warmup = Double(number(flag, value))
            case "--digests": options.digests = number(flag, value)
            default: fail("unknown option \(flag)")
            }
        }
        return options
    }
}

func number(_ flag: String, _ value: String) -> Int {
    guard let number = Int(value), number > 0 else { fail("\(flag) must be a positive integer, not '\(value)'") }
    return number
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("gantry-intake-bench: \(message)\n".utf8))
    exit(2)
}

/// One envelope of `count` manifest pushes with unique IDs.
func envelope(count: Int, host: String, digests: Int, sequence: inout Int, run: String) -> ByteBuffer {
    var events: [String] = []
    for _ in 0..<count {
        sequence += 1
        let number = String(sequence % digests)
        let digest = String(repeating: "0", count: 64 - number.count) + number
        events.append("""
            {"id":"\(run)-\(sequence)","timestamp":"2024-05-01T10:00:00Z","action":"push","target":{"mediaType":\
            "application/vnd.docker.distribution.manifest.v2+json","size":528,"digest":"sha256:\(digest)","length":528,\
            "repository":"bench/app","tag":"v\(sequence % digests)"},"request":{"id":"r","addr":"10.0.0.1:5000",\
            "host":"\(host)","method":"PUT","useragent":"bench"},"actor":{"name":"bench"},"source":{"addr":"registry:5000"}}
            """)
    }
    return ByteBuffer(string: #"{"events":["# + events.joined(separator: ",") + "]}")
}

let options = Options.parse(CommandLine.arguments)
var configuration = HTTPClient.Configuration()
configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: options.connections)
let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
let run = UUID().uuidString.prefix(8).lowercased()

struct ClientResult: Sendable {
    var latencies: [Double] = []
    var errors = 0
    var firstError: String?
}

let start = ContinuousClock.now
let measureFrom = start + .milliseconds(Int64(options.warmup * 1000))
let stopAt = measureFrom + .milliseconds(Int64(options.seconds * 1000))
let results = try await withThrowingTaskGroup(of: ClientResult.self) { group in
    for connection in 0..<options.connections {
        group.addTask {
            var result = ClientResult()
            var sequence = connection * 100_000_000
            while ContinuousClock.now < stopAt {
                var request = HTTPClientRequest(url: options.url)
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/vnd.docker.distribution.events.v1+json")
                if let authorization = options.authorization { request.headers.add(name: "Authorization", value: authorization) }
                request.body = .bytes(envelope(count: options.eventsPerRequest, host: options.host, digests: options.digests,
                                               sequence: &sequence, run: run))
                let sent = ContinuousClock.now
                do {
                    let response = try await client.execute(request, timeout: .seconds(30))
                    _ = try await response.body.collect(upTo: 1 << 20)
                    let elapsed = ContinuousClock.now - sent
                    guard sent >= measureFrom else { continue }
                    if response.status == .accepted {
                        result.latencies.append(Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000)
                    } else {
                        result.errors += 1
                        result.firstError = result.firstError ?? "HTTP \(response.status.code)"
                    }
                } catch {
                    if sent >= measureFrom {
                        result.errors += 1
                        result.firstError = result.firstError ?? "\(error)"
                    }
                }
            }
            return result
        }
    }
    var all: [ClientResult] = []
    for try await result in group { all.append(result) }
    return all
}
try await client.shutdown()

let latencies = results.flatMap(\.latencies).sorted()
let errors = results.map(\.errors).reduce(0, +)
func percentile(_ p: Double) -> Double {
    guard !latencies.isEmpty else { return 0 }
    return latencies[min(latencies.count - 1, Int((p * Double(latencies.count)).rounded(.up)) - 1)]
}
let requests = latencies.count
let events = requests * options.eventsPerRequest
print(String(format: "%.0f %.0f %.2f %.2f %.2f %.2f %d %d", Double(events) / options.seconds, Double(requests) / options.seconds,
             percentile(0.5), percentile(0.9), percentile(0.99), latencies.last ?? 0, requests, errors))
if let first = results.compactMap(\.firstError).first {
    FileHandle.standardError.write(Data("gantry-intake-bench: \(errors) errors, first: \(first)\n".utf8))
}
