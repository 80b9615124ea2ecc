import ArgumentParser
import Foundation
import GatewayApp
import GatewayAudit
import GatewayCore

/// `klarna-gateway migrate`: bring the configured store's schema up to date.
struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply pending schema migrations to the configured store (SQLite or PostgreSQL).",
        discussion: """
            `serve` and every admin command apply pending migrations themselves when they open the store; run this
            to upgrade ahead of a deployment, or to see the schema version. A store migrated by a newer binary is
            refused, never downgraded.
            """)

    @OptionGroup var config: ConfigOptions

    func run() async throws {
        try await reportingErrors {
            let configuration = try config.load()
            let store = try await configuration.openStore(migrate: false)
            let status = try await store.migrate()
            let applied = status.appliedNow.isEmpty
                ? "already current" : "applied now: " + status.appliedNow.map(String.init).joined(separator: ", ")
            print("store \(configuration.storageDescription): schema version \(status.version) (\(applied))")
        }
    }
}

/// `klarna-gateway store …`: whole-store operations.
struct StoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store", abstract: "Whole-store operations: copy a store into another.", subcommands: [Copy.self])

    /// `klarna-gateway store copy --from SRC --to DST`.
    struct Copy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "copy",
            abstract: "Copy every record from one store into a new, empty one and verify the copy.",
            discussion: """
                SRC and DST are each a SQLite file path or a postgres:// URL (the password may come from PGPASSWORD).
                DST is created and migrated if needed and must hold no records. Sealed secrets are copied as
                bytes, so both stores open with the same master key ring. Webhook destinations and events come
                along with their delivery state (leases left free). Stop writers (the CLI, gateways that write)
                during the copy. With --audit-from, the node's SQLite audit file is copied into the
                PostgreSQL trail too (same sequence numbers, hashes and checkpoints) and verified.
                """)

        @Option(help: "The store to copy from: a SQLite file path or a postgres:// URL.")
        var from: String

        @Option(help: "The store to copy into: a SQLite file path or a postgres:// URL.")
        var to: String

        @Option(name: .customLong("audit-from"), help: "Also copy this node's SQLite audit file (audit.path)…")
        var auditFrom: String?

        @Option(name: .customLong("audit-to"), help: "…into this PostgreSQL trail (default: --to).")
        var auditTo: String?

        func run() async throws {
            try await reportingErrors {
                let source = try await GatewayConfig.openStore(from)
                let destination = try await GatewayConfig.openStore(to)
                let report = try await StoreCopy.copy(from: source, to: destination)
                print("copied \(GatewayConfig.describeStorage(from)) -> \(GatewayConfig.describeStorage(to)), verified record for record:")
                print(report.description)
                if let auditFrom {
                    let trail = auditTo ?? to
                    let copied = try AuditCopy.copy(from: auditFrom, to: trail)
                    print("copied \(auditFrom) -> \(GatewayConfig.describeStorage(trail)), verified chain:")
                    print(copied.description)
                }
            }
        }
    }
}
