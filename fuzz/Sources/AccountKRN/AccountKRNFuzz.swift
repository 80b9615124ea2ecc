import GatewayCore

/// Any bytes as a KRN: the parser must never crash, and whatever it accepts must be exactly a partner account KRN
/// that parses back to itself.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAccountKRN(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: start, count: count))
    let text = String(decoding: bytes, as: UTF8.self)
    guard let krn = AccountKRN(text) else { return 0 }
    check(krn.rawValue == text, "accepted text differs from rawValue", bytes)
    check(text.utf8.count <= AccountKRN.maximumLength, "accepted an overlong KRN", bytes)
    check(text.hasPrefix("krn:partner:global:account:test:") || text.hasPrefix("krn:partner:global:account:live:"), "wrong prefix accepted", bytes)
    check(!krn.accountID.isEmpty, "empty account id accepted", bytes)
    check(krn.accountID.utf8.allSatisfy { $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) },
          "account id with a byte outside [A-Za-z0-9_-]", bytes)
    check(AccountKRN(krn.rawValue) == krn, "does not parse back to itself", bytes)
    check((krn.environment == .test) == text.hasPrefix("krn:partner:global:account:test:"), "environment disagrees with the text", bytes)
    return 0
}

private func check(_ condition: Bool, _ message: String, _ input: [UInt8]) {
    guard !condition else { return }
    fatalError("invariant broken: \(message) — input \(String(decoding: input, as: UTF8.self).debugDescription)")
}
