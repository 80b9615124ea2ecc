/// One step of a store's schema history. Both stores number their steps alike: version N means the same
/// logical schema in SQLite and in PostgreSQL, so `store copy` and the docs can speak of one version.
public struct SchemaMigration: Sendable {
    /// The step's number; versions start at 1 and have no gaps.
    public let version: Int
    /// What the step adds, for `klarna-gateway migrate` and the `schema_migrations` table.
    public let name: String
    /// The statements, run in order inside one transaction.
    public let statements: [String]

    /// Makes a step.
    public init(version: Int, name: String, statements: [String]) {
        self.version = version
        self.name = name
        self.statements = statements
    }

    /// The steps still to apply to a store at `applied` versions, in order; refuses a store written by a newer
    /// binary (a version this one does not know) rather than running against a schema it cannot read.
    public static func pending(_ known: [SchemaMigration], applied: Set<Int>) throws -> [SchemaMigration] {
        let knownVersions = Set(known.map(\.version))
        if let unknown = applied.subtracting(knownVersions).max() {
            throw StoreError(
                "the store's schema is at version \(unknown), newer than this binary knows (\(knownVersions.max() ?? 0)); "
                    + "run a klarna-gateway at least as new as the one that migrated it")
        }
        return known.filter { !applied.contains($0.version) }.sorted { $0.version < $1.version }
    }
}
