// swift-tools-version:6.2
import PackageDescription

let package = Package(
    name: "klarna-gateway",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "klarna-gateway", targets: ["KlarnaGatewayCLI"]),
        .executable(name: "klarna-simulator", targets: ["KlarnaSimulatorCLI"]),
        .library(name: "GatewayCore", targets: ["GatewayCore"]),
        // For the fuzz package in fuzz/, which builds with -sanitize=fuzzer outside the main build.
        .library(name: "GatewayPolicy", targets: ["GatewayPolicy"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/ordo-one/malloc-interposer.git", from: "1.6.1"),
        // Outgoing webhook deliveries, the notification API calls of `webhooks register` and the OTLP span export:
        // pooled connections, per-request TLS (a destination's client certificate, a partner's mTLS identity), timeouts.
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
    ],
    targets: [
        // Domain values and pure decisions: no I/O, no NIO, no database.
        .target(name: "GatewayCore", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        // Sealing secrets at rest (AES-256-GCM under HKDF-derived keys).
        .target(
            name: "GatewayVault",
            dependencies: [
                "GatewayCore",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The embedded SQLite store (GRDB on the system libsqlite3).
        .target(
            name: "GatewayStore",
            dependencies: [
                "GatewayCore",
                "GatewayVault",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        // The PostgreSQL store for several instances (postgres-nio, pooled), with the same semantics as SQLite.
        .target(
            name: "GatewayPostgres",
            dependencies: [
                "GatewayCore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The NIO data plane: listeners, TLS, the stage pipeline, upstream pools.
        .target(
            name: "GatewayProxy",
            dependencies: [
                "GatewayCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // The tamper-evident audit trail: hash-chained, signed, group-committed records in their own SQLite file.
        .target(
            name: "GatewayAudit",
            dependencies: [
                "GatewayCore", "GatewayStore", "GatewayPostgres",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Policy files (YAML) parsed and checked against the catalogue; small so it can be fuzzed on its own.
        .target(
            name: "GatewayPolicy",
            dependencies: ["GatewayCore", .product(name: "Yams", package: "Yams")]
        ),
        // Klarna's webhooks: the receiving listener, the intake's group commit, the delivery worker, the notification
        // API client. Writes to the store, never on the proxy's request path.
        .target(
            name: "GatewayWebhooks",
            dependencies: [
                "GatewayCore", "GatewayProxy",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        // Wiring: configuration and policy loading, snapshots, the running service.
        .target(
            name: "GatewayApp",
            dependencies: [
                "GatewayCore", "GatewayVault", "GatewayStore", "GatewayPostgres", "GatewayProxy", "GatewayAudit", "GatewayPolicy", "GatewayWebhooks",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            // The admin API's OpenAPI document and the web console's files, compiled into the binary: served as
            // committed, nothing read from disk at run time.
            resources: [.embedInCode("Resources/admin-openapi.json")]
                + ["console.html", "console.css", "console.js", "console-api.js", "console-view.js", "console-overview.js", "console-merchants.js", "console-merchant-forms.js", "console-audit.js", "console-audit-live.js", "console-more.js", "console-release-calendar.js", "console-rate-limits.js", "console-policies.js", "console-policy-history.js", "console-admins.js", "console-partners.js", "console-webhooks.js"]
                .map { .embedInCode("Resources/console/\($0)") }
        ),
        .executableTarget(
            name: "KlarnaGatewayCLI",
            dependencies: [
                "GatewayApp", "GatewayAudit", "GatewayProxy",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            path: "Sources/klarna-gateway"
        ),
        // The offline Klarna stand-in; the gateway binary does not link it.
        .target(
            name: "KlarnaSimulator",
            dependencies: [
                "GatewayCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "KlarnaSimulatorCLI",
            dependencies: [
                "KlarnaSimulator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/klarna-simulator"
        ),
        // Throwaway PKI, free ports and child processes for tests; never linked into a product.
        .target(
            name: "GatewayTestSupport",
            dependencies: [
                "KlarnaSimulator",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // Hot-path decision costs (release build): `swift run -c release gateway-microbench`.
        .executableTarget(name: "gateway-microbench", dependencies: ["GatewayCore"], path: "bench/micro"),
        // The least a SwiftNIO proxy does for the bench's load: the ceiling bench/gateway-vs-nginx.sh reads the gateway against.
        .executableTarget(
            name: "bare-proxy-bench",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            path: "bench/bare-proxy"
        ),
        // Allocations per proxied call in a process of its own (bench/alloc-count.sh; CI gates the counts).
        .executableTarget(
            name: "gateway-alloc-count",
            dependencies: [
                "GatewayApp", "GatewayProxy",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "MallocInterposerSwift", package: "malloc-interposer"),
            ],
            path: "bench/alloc"
        ),
        .testTarget(name: "GatewayCoreTests", dependencies: ["GatewayCore"]),
        .testTarget(name: "GatewayVaultTests", dependencies: ["GatewayVault", "GatewayCore"]),
        .testTarget(
            name: "GatewayStoreTests",
            dependencies: [
                "GatewayStore", "GatewayPostgres", "GatewayVault", "GatewayCore", "GatewayTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // The admin operations in process, and the built `klarna-gateway` binary end to end, against temporary
        // configs, stores and key rings.
        .testTarget(
            name: "GatewayCLITests",
            dependencies: ["GatewayApp", "GatewayStore", "GatewayPostgres", "GatewayVault", "GatewayCore", "GatewayTestSupport", "GatewayWebhooks"]
        ),
        .testTarget(
            name: "GatewayAuditTests",
            dependencies: [
                "GatewayAudit", "GatewayCore", "GatewayPostgres", "GatewayTestSupport",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            // A trail written by an earlier version of the writer, read by path.
            exclude: ["Fixtures"]
        ),
        // Writer-only throughput per durability mode; `swift run -c release audit-writer-bench`.
        .executableTarget(
            name: "audit-writer-bench",
            dependencies: [
                "GatewayAudit", "GatewayCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "bench/audit-writer"
        ),
        // Klarna's webhooks end to end: the simulator as Klarna, the gateway and its CLI as child processes, receivers
        // over real TLS.
        .testTarget(
            name: "GatewayWebhooksTests",
            dependencies: [
                "GatewayWebhooks", "GatewayApp", "GatewayCore", "GatewayStore", "GatewayPostgres", "GatewayPolicy", "GatewayTestSupport",
                "KlarnaSimulator",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "KlarnaSimulatorTests",
            dependencies: ["KlarnaSimulator", "GatewayCore", "GatewayTestSupport"]
        ),
        .testTarget(
            name: "GatewayProxyTests",
            dependencies: [
                "GatewayProxy", "GatewayApp", "GatewayCore", "GatewayStore", "GatewayPostgres", "GatewayVault",
                "GatewayTestSupport", "KlarnaSimulator", "GatewayAudit", "GatewayWebhooks",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // deploy/ (container build, systemd unit, Kubernetes manifests, probe script): the files parse, carry the
        // settings production needs, and agree with the code (their configs load through ConfigLoader).
        .testTarget(
            name: "DeployTests",
            dependencies: [
                "GatewayApp", "GatewayCore", "GatewayVault", "GatewayTestSupport",
                .product(name: "Yams", package: "Yams"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
    ]
)
