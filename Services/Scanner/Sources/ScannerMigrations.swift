import Foundation
import GantryRuntime

/// The scanner's migrations (its `Migrations` resources), for tools and tests that migrate a database
/// without starting the service.
enum ScannerMigrations {
    static func load() throws -> [Migration] { try ServiceRuntime.migrations(in: Bundle.module) }
}
