// swift-tools-version:6.2
// libFuzzer targets for the gateway's parsers, kept out of the main package: an executable exporting
// `LLVMFuzzerTestOneInput` links only with `--sanitize=fuzzer`. Build and run them with `fuzz/run [seconds]`.
import PackageDescription

let package = Package(
    name: "klarna-gateway-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        // The name pins the package's identity whatever the checkout's directory is called.
        .package(name: "klarna-gateway", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        // The catalogue and seed helpers shared by the targets.
        .target(
            name: "FuzzSupport",
            dependencies: [.product(name: "GatewayCore", package: "klarna-gateway")],
            path: "Sources/FuzzSupport"
        ),
        // NIOHTTP1's request decoder, then every check the gateway applies to a head before it picks an operation.
        .executableTarget(
            name: "fuzz-request-head",
            dependencies: [
                "FuzzSupport",
                .product(name: "GatewayCore", package: "klarna-gateway"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Sources/RequestHead"
        ),
        // The catalogue's trie matcher on arbitrary methods and paths.
        .executableTarget(
            name: "fuzz-operation-matcher",
            dependencies: ["FuzzSupport", .product(name: "GatewayCore", package: "klarna-gateway")],
            path: "Sources/OperationMatcher"
        ),
        // The partner-account KRN parser.
        .executableTarget(
            name: "fuzz-account-krn",
            dependencies: [.product(name: "GatewayCore", package: "klarna-gateway")],
            path: "Sources/AccountKRN"
        ),
        // YAML policies (access, rate limits, releases) through PolicyLoader.
        .executableTarget(
            name: "fuzz-policy-loader",
            dependencies: [
                "FuzzSupport",
                .product(name: "GatewayCore", package: "klarna-gateway"),
                .product(name: "GatewayPolicy", package: "klarna-gateway"),
            ],
            path: "Sources/PolicyLoader"
        ),
    ]
)
