#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Request ids (and the idempotency keys the gateway adds): random UUIDs (version 4) in lower case, made without
/// Foundation's `UUID`, whose `uuidString` and the `lowercased()` after it cost two Strings per call.
public enum RequestID {
    /// A new random id, `xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`.
    public static func make() -> String {
        var bytes: (UInt64, UInt64) = (0, 0)
        // arc4random_buf keeps its ChaCha state in the process: no system call per id, unlike getrandom.
        withUnsafeMutableBytes(of: &bytes) { arc4random_buf($0.baseAddress!, 16) }
        return format(high: bytes.0, low: bytes.1)
    }

    /// Formats 128 bits as a version-4 UUID string (the version and variant bits are set here).
    public static func format(high: UInt64, low: UInt64) -> String {
        let high = (high & ~0xF000) | 0x4000
        let low = (low & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000
        return String(unsafeUninitializedCapacity: 36) { buffer in
            let digits: StaticString = "0123456789abcdef"
            var index = 0
            func put(_ value: UInt64, nibbles: Int) {
                var shift = nibbles * 4
                while shift > 0 {
                    shift -= 4
                    buffer[index] = digits.utf8Start[Int((value >> UInt64(shift)) & 0xF)]
                    index += 1
                }
            }
            func dash() {
                buffer[index] = UInt8(ascii: "-")
                index += 1
            }
            put(high >> 32, nibbles: 8)
            dash()
            put((high >> 16) & 0xFFFF, nibbles: 4)
            dash()
            put(high & 0xFFFF, nibbles: 4)
            dash()
            put(low >> 48, nibbles: 4)
            dash()
            put(low & 0xFFFF_FFFF_FFFF, nibbles: 12)
            return 36
        }
    }
}
