// swift-tools-version:6.1
import PackageDescription

/// Builds `swift-openapi-generator` for `make generate` only, so that a plain build of
/// Gantry never compiles the generator (ARCHITECTURE.md: generated code is committed).
let package = Package(
    name: "GantryOpenAPIGenerator",
    dependencies: [
        .package(url: "https://github.com/apple/swift-openapi-generator.git", exact: "1.14.3"),
    ],
    targets: [
        .executableTarget(
            name: "gantry-openapi-generator-anchor",
            dependencies: [.product(name: "swift-openapi-generator", package: "swift-openapi-generator")],
            path: "Sources"),
    ]
)
