/// Header names looked up ignoring ASCII case, without hashing a name or making a lower-cased copy of it.
///
/// The names are grouped by length, so a lookup compares a header only with the few names of its own length; the
/// request path asks this for every header a caller sends, and a `Set<String>` hashed each name (twice, with the
/// lower-cased copy made first).
public struct HeaderNameSet: Sendable {
    /// The names' lower-case bytes; `byLength[n]` holds those of `n` bytes.
    private let byLength: [[[UInt8]]]

    /// Makes a set of `names`, in any case.
    public init<Names: Sequence<String>>(_ names: Names) {
        var groups: [[[UInt8]]] = []
        for name in names {
            let bytes = Array(name.lowercased().utf8)
            if groups.count <= bytes.count { groups += Array(repeating: [], count: bytes.count + 1 - groups.count) }
            if !groups[bytes.count].contains(bytes) { groups[bytes.count].append(bytes) }
        }
        byLength = groups
    }

    /// Whether `name` is in the set, ignoring ASCII case.
    @inlinable
    public func contains(_ name: String) -> Bool {
        let count = name.utf8.count
        return count < lengths && candidates(ofLength: count).contains { candidate in
            candidate.withUnsafeBufferPointer { ASCIICase.hasPrefix(name, expected: $0) }
        }
    }

    /// One more than the longest name's length.
    @usableFromInline var lengths: Int { byLength.count }

    /// The names of `length` bytes.
    @usableFromInline func candidates(ofLength length: Int) -> [[UInt8]] { byLength[length] }
}
