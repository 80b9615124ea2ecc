extension Sequence<UInt8> {
    /// Calls `body` with the bytes through a pointer: in place where they are contiguous (a native string's UTF-8
    /// always is), else copied into an array first. The request path reads paths, tokens and KRNs this way, since
    /// stepping a substring's UTF-8 view checks its bounds and index per byte.
    @inlinable
    func withBytes<Result>(_ body: (UnsafeBufferPointer<UInt8>) -> Result) -> Result {
        withContiguousStorageIfAvailable(body) ?? Array(self).withUnsafeBufferPointer(body)
    }
}
