extension Substring {
    /// Splits on an ASCII separator byte, keeping empty pieces, by scanning UTF-8 bytes.
    ///
    /// `String.split` works on grapheme clusters and costs several times more; paths and KRNs are split on
    /// every request, and an ASCII byte can never fall inside a multi-byte character, so byte splitting is exact.
    @inlinable
    func fastSplit(_ separator: UInt8) -> [Substring] {
        var pieces: [Substring] = []
        pieces.reserveCapacity(8)
        let utf8 = self.utf8
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
}
