// swift-tools-version:6.1
import PackageDescription

/// Swift settings every Gantry target shares (STYLE.md: Swift 6 mode, ExistentialAny, MemberImportVisibility).
let gantrySwiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let hummingbird = Target.Dependency.product(name: "Hummingbird", package: "hummingbird")
let hummingbirdTesting = Target.Dependency.product(name: "HummingbirdTesting", package: "hummingbird")
let postgresNIO = Target.Dependency.product(name: "PostgresNIO", package: "postgres-nio")
let asyncHTTPClient = Target.Dependency.product(name: "AsyncHTTPClient", package: "async-http-client")
let openAPIRuntime = Target.Dependency.product(name: "OpenAPIRuntime", package: "swift-openapi-runtime")
let openAPIHummingbird = Target.Dependency.product(name: "OpenAPIHummingbird", package: "swift-openapi-hummingbird")
let openAPIAHC = Target.Dependency.product(name: "OpenAPIAsyncHTTPClient", package: "swift-openapi-async-http-client")
let logging = Target.Dependency.product(name: "Logging", package: "swift-log")
let crypto = Target.Dependency.product(name: "Crypto", package: "swift-crypto")
let nioCore = Target.Dependency.product(name: "NIOCore", package: "swift-nio")
let nioHTTP1 = Target.Dependency.product(name: "NIOHTTP1", package: "swift-nio")
let serviceLifecycle = Target.Dependency.product(name: "ServiceLifecycle", package: "swift-service-lifecycle")

/// The six services share one shape (vapor/penny-bot's target factory): a library `Name`
/// under `Services/Name/Sources`, a thin executable under `Services/Name/Executable`,
/// and a test target under `Tests/NameTests`.
struct GantryService {
    let name: String
    let executable: String
    let api: String
    let extra: [Target.Dependency]
}

let services: [GantryService] = [
    .init(name: "Discovery", executable: "gantry-discovery", api: "DiscoveryAPI", extra: ["RegistryClient", "ScannerAPI", "NotificationAPI"]),
    .init(name: "Ingestion", executable: "gantry-ingestion", api: "IngestionAPI", extra: ["DiscoveryAPI", "ScannerAPI", "RegistryClient"]),
    .init(name: "Scanner", executable: "gantry-scanner", api: "ScannerAPI",
          extra: ["DiscoveryAPI", "FindingsPolicyAPI", "BillingAPI", "NotificationAPI", "RegistryClient", "ImageAnalysis",
                  "VulnerabilityDB"]),
    .init(name: "FindingsPolicy", executable: "gantry-findings-policy", api: "FindingsPolicyAPI", extra: ["NotificationAPI"]),
    .init(name: "Billing", executable: "gantry-billing", api: "BillingAPI", extra: []),
    .init(name: "Notification", executable: "gantry-notification", api: "NotificationAPI", extra: ["RegistryClient"]),
]

let apiModules = services.map(\.api)

var targets: [Target] = [
    .target(name: "GantryModel", path: "Shared/GantryModel", swiftSettings: gantrySwiftSettings),
    .systemLibrary(name: "CArchive", path: "Shared/CArchive", pkgConfig: "libarchive",
                   providers: [.apt(["libarchive-dev"])]),
    .systemLibrary(name: "CRPM", path: "Shared/CRPM", pkgConfig: "rpm", providers: [.apt(["librpm-dev"])]),
    .target(
        name: "GantryRuntime",
        dependencies: [
            "GantryModel", "RegistryClient", hummingbird, postgresNIO, asyncHTTPClient, openAPIRuntime, openAPIAHC, logging, crypto,
            serviceLifecycle, nioCore, nioHTTP1, .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "JWTKit", package: "jwt-kit"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ],
        path: "Shared/GantryRuntime", swiftSettings: gantrySwiftSettings),
    .target(name: "RegistryClient", dependencies: ["GantryModel", asyncHTTPClient, crypto, logging],
            path: "Shared/RegistryClient", swiftSettings: gantrySwiftSettings),
    .target(name: "ImageAnalysis", dependencies: ["GantryModel", "CArchive", "CRPM", crypto],
            path: "Shared/ImageAnalysis", swiftSettings: gantrySwiftSettings),
    .target(name: "VulnerabilityDB", dependencies: ["GantryModel", "CArchive", crypto, .product(name: "Yams", package: "Yams")],
            path: "Shared/VulnerabilityDB", swiftSettings: gantrySwiftSettings),
    // Discovery: service tests run the real discovery beside the service (subscription ownership, issue 6).
    .target(name: "GantryTesting", dependencies: ["GantryRuntime", "GantryModel", postgresNIO, hummingbird, logging,
                                                  asyncHTTPClient, nioCore, nioHTTP1, serviceLifecycle, "Discovery"],
            path: "Shared/GantryTesting", swiftSettings: gantrySwiftSettings),
    .executableTarget(
        name: "gantry",
        dependencies: [
            "GantryModel", "GantryRuntime", "RegistryClient", "ImageAnalysis", "VulnerabilityDB",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            asyncHTTPClient, openAPIRuntime, openAPIAHC, nioCore, nioHTTP1, hummingbird, logging, crypto,
            .product(name: "HTTPTypes", package: "swift-http-types"), "Notification",
        ] + apiModules.map { Target.Dependency(stringLiteral: $0) },
        path: "Services/CLI", swiftSettings: gantrySwiftSettings),
    .executableTarget(name: "gantry-bench", dependencies: ["GantryModel", "ImageAnalysis"],
                      path: "Benchmarks/GantryBench", swiftSettings: gantrySwiftSettings),
    .executableTarget(name: "gantry-kb-bench", dependencies: ["GantryModel", "VulnerabilityDB"],
                      path: "Benchmarks/KnowledgeBaseBench", swiftSettings: gantrySwiftSettings),
    .testTarget(name: "GantryModelTests", dependencies: ["GantryModel"], swiftSettings: gantrySwiftSettings),
    .testTarget(name: "GantryRuntimeTests", dependencies: ["GantryRuntime", "GantryTesting", "GantryModel", hummingbird, hummingbirdTesting,
                                                       postgresNIO, asyncHTTPClient, logging, nioCore, nioHTTP1, serviceLifecycle,
                                                       .product(name: "HTTPTypes", package: "swift-http-types"),
                                                       .product(name: "JWTKit", package: "jwt-kit")],
                swiftSettings: gantrySwiftSettings),
    .testTarget(name: "RegistryClientTests", dependencies: ["RegistryClient", "GantryTesting", "GantryModel", asyncHTTPClient, crypto,
                                                        logging, nioCore],
                swiftSettings: gantrySwiftSettings),
    .testTarget(name: "ImageAnalysisTests", dependencies: ["ImageAnalysis", "GantryTesting", "GantryModel", "CArchive"], swiftSettings: gantrySwiftSettings),
    .testTarget(name: "VulnerabilityDBTests", dependencies: ["VulnerabilityDB", "ImageAnalysis", "GantryTesting", "GantryModel", crypto], swiftSettings: gantrySwiftSettings),
    .testTarget(
        name: "EndToEndTests",
        dependencies: ["GantryTesting", "GantryRuntime", "GantryModel", "RegistryClient", asyncHTTPClient, postgresNIO, hummingbird,
                       logging, nioCore, nioHTTP1, serviceLifecycle, .product(name: "HTTPTypes", package: "swift-http-types")]
            + services.map { Target.Dependency(stringLiteral: $0.name) }
            + apiModules.map { Target.Dependency(stringLiteral: $0) },
        swiftSettings: gantrySwiftSettings),
    .testTarget(name: "ComposeTests", dependencies: ["GantryTesting"], swiftSettings: gantrySwiftSettings),
    // User authentication and the role matrix of every service (docs/ROLES.md).
    .testTarget(
        name: "AuthorizationTests",
        dependencies: ["GantryTesting", "GantryRuntime", hummingbird, asyncHTTPClient, crypto, logging, nioCore, nioHTTP1, postgresNIO,
                       serviceLifecycle, .product(name: "HTTPTypes", package: "swift-http-types"),
                       .product(name: "JWTKit", package: "jwt-kit"), .product(name: "Yams", package: "Yams")]
            + services.map { Target.Dependency(stringLiteral: $0.name) },
        swiftSettings: gantrySwiftSettings),
]

for api in apiModules {
    // Generated code: Swift 6 mode only, no upcoming-feature settings it was not written for.
    targets.append(.target(name: api, dependencies: [openAPIRuntime, .product(name: "HTTPTypes", package: "swift-http-types")],
                           path: "Shared/Contracts/\(api)"))
}

for service in services {
    targets.append(.target(
        name: service.name,
        dependencies: ["GantryModel", "GantryRuntime", Target.Dependency(stringLiteral: service.api), hummingbird,
                       openAPIRuntime, openAPIHummingbird, postgresNIO, logging, asyncHTTPClient, nioCore, nioHTTP1,
                       serviceLifecycle, crypto, .product(name: "HTTPTypes", package: "swift-http-types")]
            + service.extra,
        path: "Services/\(service.name)/Sources",
        resources: [.copy("Migrations")],
        swiftSettings: gantrySwiftSettings))
    targets.append(.executableTarget(
        name: service.executable,
        dependencies: [Target.Dependency(stringLiteral: service.name), "GantryRuntime"],
        path: "Services/\(service.name)/Executable",
        swiftSettings: gantrySwiftSettings))
    targets.append(.testTarget(
        name: "\(service.name)Tests",
        dependencies: [Target.Dependency(stringLiteral: service.name), "GantryTesting", "GantryRuntime", hummingbird,
                       hummingbirdTesting, postgresNIO, Target.Dependency(stringLiteral: service.api),
                       nioHTTP1, logging, serviceLifecycle, .product(name: "HTTPTypes", package: "swift-http-types"), crypto]
            + service.extra,
        swiftSettings: gantrySwiftSettings))
}

// The scanner's queue and re-evaluation tests run discovery beside the scanner and build its parts.
if let scannerTests = targets.first(where: { $0.name == "ScannerTests" }) {
    scannerTests.dependencies += ["Discovery", "GantryModel", asyncHTTPClient, openAPIRuntime]
}
// The ingestion tests register registries through discovery's parts; the import tests run the scanner; the webhook
// routes are checked against ingestion.yaml (Yams).
if let ingestionTests = targets.first(where: { $0.name == "IngestionTests" }) {
    ingestionTests.dependencies += ["Discovery", "Scanner", .product(name: "Yams", package: "Yams")]
}
// The crawl tests run notification beside discovery to see a crawl's registryUnreachable alert arrive.
if let discoveryTests = targets.first(where: { $0.name == "DiscoveryTests" }) {
    discoveryTests.dependencies += ["Notification"]
}

let package = Package(
    name: "Gantry",
    platforms: [.macOS(.v14)],
    products: services.map { .executable(name: $0.executable, targets: [$0.executable]) }
        + [.executable(name: "gantry", targets: ["gantry"]),
           .executable(name: "gantry-bench", targets: ["gantry-bench"]),
           .executable(name: "gantry-kb-bench", targets: ["gantry-kb-bench"])],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/swift-openapi-hummingbird.git", from: "2.1.0"),
        .package(url: "https://github.com/apple/swift-openapi-runtime.git", from: "1.13.4"),
        .package(url: "https://github.com/swift-server/swift-openapi-async-http-client.git", from: "1.5.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: targets,
    swiftLanguageModes: [.v6]
)
