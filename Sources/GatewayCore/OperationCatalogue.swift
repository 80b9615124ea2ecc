/// The operations the gateway knows, loaded from the catalogue data file (`config/catalogue/operations.tsv`).
public struct OperationCatalogue: Sendable {
    /// Every operation, in file order.
    public let operations: [Operation]
    /// Every Klarna rate-limit category an operation of the catalogue belongs to.
    public var categories: Set<String> { Set(operations.map(\.category)) }
    /// The matcher built over them.
    public let matcher: OperationMatcher

    /// An error in the catalogue file, with the line it is on.
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        /// 1-based line number.
        public let line: Int
        /// What is wrong.
        public let reason: String
        /// `line N: reason`.
        public var description: String { "catalogue line \(line): \(reason)" }
    }

    /// The columns the file must have, in order.
    public static let columns = ["id", "method", "path", "scope", "family", "category", "introduced", "test_only"]

    /// Builds a catalogue from operations (checks ids are unique and no two rows claim the same method and path).
    public init(operations: [Operation]) throws {
        var ids = Set<String>()
        for (index, operation) in operations.enumerated() where !ids.insert(operation.id).inserted {
            throw ParseError(line: index + 2, reason: "duplicate operation id \(operation.id)")
        }
        self.operations = operations
        self.matcher = try OperationMatcher(operations: operations)
    }

    /// Parses the TSV text: a header line naming `columns`, then one operation a line; `#` starts a comment line.
    public init(tsv: String) throws {
        var operations: [Operation] = []
        var sawHeader = false
        for (offset, rawLine) in tsv.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let lineNumber = offset + 1
            let line = rawLine.hasSuffix("\r") ? rawLine.dropLast() : rawLine
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            if !sawHeader {
                guard fields == OperationCatalogue.columns else {
                    throw ParseError(line: lineNumber, reason: "header must be: \(OperationCatalogue.columns.joined(separator: " "))")
                }
                sawHeader = true
                continue
            }
            guard fields.count == OperationCatalogue.columns.count else {
                throw ParseError(line: lineNumber, reason: "expected \(OperationCatalogue.columns.count) tab-separated fields, found \(fields.count)")
            }
            guard let scope = OperationScope(rawValue: fields[3]) else {
                throw ParseError(line: lineNumber, reason: "scope must be merchant, acquirer or direct, not '\(fields[3])'")
            }
            guard ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(fields[1]) else {
                throw ParseError(line: lineNumber, reason: "unsupported method '\(fields[1])'")
            }
            guard fields[2].hasPrefix("/") else { throw ParseError(line: lineNumber, reason: "path must start with /") }
            guard let testOnly = ["yes": true, "no": false][fields[7]] else {
                throw ParseError(line: lineNumber, reason: "test_only must be yes or no")
            }
            for (name, value) in [("id", fields[0]), ("family", fields[4]), ("category", fields[5]), ("introduced", fields[6])] where value.isEmpty {
                throw ParseError(line: lineNumber, reason: "\(name) is empty")
            }
            let operation = Operation(
                id: fields[0], method: fields[1], template: fields[2], scope: scope, family: fields[4],
                category: fields[5], introducedIn: fields[6], testOnly: testOnly
            )
            if scope == .merchant && operation.accountSegmentIndex == nil {
                throw ParseError(line: lineNumber, reason: "a merchant-scoped path needs a {partner_account_id} segment")
            }
            operations.append(operation)
        }
        guard sawHeader else { throw ParseError(line: 1, reason: "empty catalogue") }
        try self.init(operations: operations)
    }

    /// The operation with this id.
    public func operation(id: String) -> Operation? { operations.first { $0.id == id } }

    /// Every family named in the catalogue, for validating grants.
    public var families: Set<String> { Set(operations.map(\.family)) }
}
