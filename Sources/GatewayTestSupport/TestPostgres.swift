import Foundation

/// The PostgreSQL server the tests use: bin/with-postgres exports its URL. Under CI or `KGW_REQUIRE_POSTGRES=1`
/// it is required, so the PostgreSQL cases fail for lack of it instead of silently not running.
public enum TestPostgres {
    /// `KGW_TEST_POSTGRES_URL`, when set and not empty.
    public static var serverURL: String? {
        ProcessInfo.processInfo.environment["KGW_TEST_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// A database name no other test uses: `prefix` and 20 random hex digits (well inside PostgreSQL's 63 bytes).
    public static func databaseName(_ prefix: String) -> String {
        prefix + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(20)
    }

    /// Whether the PostgreSQL cases must run here.
    public static var required: Bool {
        let environment = ProcessInfo.processInfo.environment
        let ci = environment["CI"].map { !$0.isEmpty && $0 != "false" && $0 != "0" } ?? false
        return ci || environment["KGW_REQUIRE_POSTGRES"] == "1"
    }
}
