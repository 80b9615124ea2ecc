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
        let bits = RandomBits.next()
        return format(high: bits.high, low: bits.low)
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

/// 128 random bits at a time from a per-thread buffer of the kernel's random bytes: one `getrandom(2)` per 256
/// values instead of one per request id (glibc's `arc4random_buf` makes that system call on every use).
enum RandomBits {
    private static let size = 4096

    private final class Buffer {
        let bytes = UnsafeMutableRawPointer.allocate(byteCount: RandomBits.size, alignment: 8)
        var offset = RandomBits.size
        deinit { bytes.deallocate() }
    }

    /// One buffer per thread: the event loops never share one, so there is no lock.
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let created = pthread_key_create(&key) { buffer in
            if let buffer { Unmanaged<Buffer>.fromOpaque(buffer).release() }
        }
        precondition(created == 0, "cannot create the random buffer's thread key")
        return key
    }()

    /// The next 128 random bits.
    static func next() -> (high: UInt64, low: UInt64) {
        let buffer: Buffer
        if let stored = pthread_getspecific(key) {
            buffer = Unmanaged<Buffer>.fromOpaque(stored).takeUnretainedValue()
        } else {
            buffer = Buffer()
            pthread_setspecific(key, Unmanaged.passRetained(buffer).toOpaque())
        }
        if buffer.offset + 16 > size {
            arc4random_buf(buffer.bytes, size)
            buffer.offset = 0
        }
        let high = buffer.bytes.loadUnaligned(fromByteOffset: buffer.offset, as: UInt64.self)
        let low = buffer.bytes.loadUnaligned(fromByteOffset: buffer.offset + 8, as: UInt64.self)
        // Used bits are wiped, so no id can be read back from memory after it was handed out.
        (buffer.bytes + buffer.offset).initializeMemory(as: UInt8.self, repeating: 0, count: 16)
        buffer.offset += 16
        return (high, low)
    }
}
