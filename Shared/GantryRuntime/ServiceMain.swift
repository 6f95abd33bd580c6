import Foundation
import Hummingbird

/// Entry point of every service executable: reads the configuration, builds the application and runs it
/// until SIGTERM or SIGINT. A start-up error (bad configuration, unreachable database at migration) is
/// printed as one line on standard error and exits with status 1, without a crash report.
public enum ServiceMain {
    public static func run<App: ApplicationProtocol>(
        _ service: GantryServiceName,
        build: (GantryConfiguration) async throws -> App
    ) async -> Never {
        do {
            let configuration = try GantryConfiguration(service: service)
            try await build(configuration).runService()
            exit(0)
        } catch {
            FileHandle.standardError.write(Data("gantry-\(service.rawValue): \(error)\n".utf8))
            exit(1)
        }
    }
}
