extension Substring {
    /// Splits on an ASCII separator byte, keeping empty pieces, by scanning UTF-8 bytes.
    ///
    /// `String.split` works on grapheme clusters and costs several times more; paths and KRNs are split on
    /// every request, and an ASCII byte can never fall inside a multi-byte character, so byte splitting is exact.
    /// The bytes are scanned in place where the string has them contiguous (a native string always does): stepping
    /// a `String.Index` per byte checks the index each time.
    @inlinable
    func fastSplit(_ separator: UInt8) -> [Substring] {
        var pieces: [Substring] = []
        pieces.reserveCapacity(8)
        let utf8 = self.utf8
        let scanned: Void? = utf8.withContiguousStorageIfAvailable { bytes in
            var start = 0
            for offset in bytes.indices where bytes[offset] == separator {
                pieces.append(self[utf8.index(utf8.startIndex, offsetBy: start)..<utf8.index(utf8.startIndex, offsetBy: offset)])
                start = offset + 1
            }
            pieces.append(self[utf8.index(utf8.startIndex, offsetBy: start)...])
        }
        if scanned != nil { return pieces }
        var start = utf8.startIndex
        var index = start
        while index != utf8.endIndex {
            if utf8[index] == separator {
                pieces.append(self[start..<index])
                start = utf8.index(after: index)
            }
            index = utf8.index(after: index)
        }
        pieces.append(self[start..<utf8.endIndex])
        return pieces
    }
}

extension String {
    /// Splits on an ASCII separator byte, keeping empty pieces (see `Substring.fastSplit`).
    @inlinable
    func fastSplit(_ separator: UInt8) -> [Substring] { self[...].fastSplit(separator) }

    /// The index of the first `byte` (ASCII) in the string, searched in its UTF-8 bytes in place.
    @inlinable
    func firstIndex(ofByte byte: UInt8) -> String.Index? {
        if let found = utf8.withContiguousStorageIfAvailable({ $0.firstIndex(of: byte) }) {
            return found.map { utf8.index(utf8.startIndex, offsetBy: $0) }
        }
        return utf8.firstIndex(of: byte)
    }
}
