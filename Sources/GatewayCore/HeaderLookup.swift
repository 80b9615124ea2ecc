/// Read access to request headers, so the pure stages work on NIO's `HTTPHeaders` without copying them.
public protocol HeaderLookup {
    /// Every value of the header `name` (case-insensitive), in order.
    func values(of name: String) -> [String]
    /// Every (name, value) pair, in order.
    func forEachHeader(_ body: (String, String) throws -> Void) rethrows
    /// How many pairs there are.
    var headerCount: Int { get }
}

extension HeaderLookup {
    /// The single value of `name`, nil when absent; two or more values are refused, since two
    /// `Authorization` or `Klarna-Gateway-Merchant` headers are either a bug or an attempt to confuse a hop.
    ///
    /// `name` is lower-case. Found by walking the headers, not with `values(of:)`: no array per lookup.
    public func single(_ name: String) throws(GatewayError) -> String? {
        var found: String?
        var count = 0
        forEachHeader { header, value in
            guard ASCIICase.equals(header, lowercaseName: name) else { return }
            count += 1
            if found == nil { found = value }
        }
        guard count <= 1 else { throw GatewayError(.badRequest, "The header \(name) appears more than once.") }
        return found
    }

    /// How many pairs there are, counted by walking them (a list that knows its count says so instead).
    public var headerCount: Int {
        var count = 0
        forEachHeader { _, _ in count += 1 }
        return count
    }

    /// How many times the header `name` (lower-case) appears.
    public func count(of name: String) -> Int {
        var count = 0
        forEachHeader { header, _ in if ASCIICase.equals(header, lowercaseName: name) { count += 1 } }
        return count
    }
}

/// Headers as a plain list, for tests and non-NIO callers.
public struct HeaderList: HeaderLookup, Sendable, ExpressibleByDictionaryLiteral {
    /// The headers in order.
    public var pairs: [(String, String)]

    /// Makes a list from pairs.
    public init(_ pairs: [(String, String)]) { self.pairs = pairs }
    /// Makes a list from a literal.
    public init(dictionaryLiteral elements: (String, String)...) { self.pairs = elements }

    /// Every value of `name`, case-insensitively.
    public func values(of name: String) -> [String] {
        pairs.filter { $0.0.lowercased() == name.lowercased() }.map(\.1)
    }

    /// Every pair in order.
    public func forEachHeader(_ body: (String, String) throws -> Void) rethrows {
        for (name, value) in pairs { try body(name, value) }
    }

    /// How many pairs there are.
    public var headerCount: Int { pairs.count }
}
