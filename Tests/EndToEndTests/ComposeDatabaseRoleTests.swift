import Foundation
import GantryTesting
import Testing

/// The compose deployment's database role, for real: `compose/postgres-init/10-gantry-role.sh` run as the
/// postgres image runs it (its superuser `postgres`, `GANTRY_DB_PASSWORD` in the environment) against a fresh
/// PostgreSQL cluster. The services' role must come out a plain owner that row-level security applies to.
@Suite("Compose database role")
struct ComposeDatabaseRoleTests {
    @Test("the init script creates gantry as the gantry database's owner, without superuser, BYPASSRLS or CREATEROLE")
    func initScriptMakesAPlainOwner() async throws {
        let postgres = try await PrivatePostgres.start(superuser: "postgres")
        defer { postgres.stop() }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("compose/postgres-init/10-gantry-role.sh")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = [script.path]
        var environment = ProcessInfo.processInfo.environment
        environment["POSTGRES_USER"] = "postgres"
        environment["GANTRY_DB_PASSWORD"] = "it's-a-\"quoted\"-password"
        environment["PGHOST"] = "127.0.0.1"
        environment["PGPORT"] = "\(postgres.port)"
        environment["PATH"] = "\(postgres.bin):" + (environment["PATH"] ?? "/usr/bin:/bin")
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(text)")
        #expect(try await postgres.count("""
            SELECT count(*)::int FROM pg_roles
            WHERE rolname = 'gantry' AND rolcanlogin AND NOT rolsuper AND NOT rolbypassrls AND NOT rolcreaterole
            """) == 1)
        #expect(try await postgres.count("""
            SELECT count(*)::int FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba
            WHERE d.datname = 'gantry' AND r.rolname = 'gantry'
            """) == 1)
        // The password was set from the environment, quotes and all (psql's :'pw' quoting).
        #expect(try await postgres.count("SELECT count(*)::int FROM pg_authid WHERE rolname = 'gantry' AND rolpassword IS NOT NULL") == 1)
    }
}
