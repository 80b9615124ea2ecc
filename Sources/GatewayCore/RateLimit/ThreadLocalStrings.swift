#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Each thread's own copies of the few long strings that every call's rate-limit keys hold: categories, partner and
/// caller ids.
///
/// A key retains its strings, and the snapshot hands every event loop the same string objects, so two loops deciding
/// at once moved those objects' reference counts between the cores several times per call: with a category made at
/// run time, as the catalogue makes it, two threads took 1.6 µs per decision against 0.85 µs with a literal, whose
/// count is never written (docs/performance.md). Keys made from a thread's own copy count on that thread's object.
/// Small strings (15 UTF-8 bytes or fewer) and literals are never counted and are returned as they are; merchant ids
/// are not passed here, since they are many and a merchant's calls rarely meet on two loops.
enum ThreadLocalStrings {
    /// The most strings a thread keeps; past it the thread starts again with none. Categories and partner and caller
    /// ids are tens in a deployment: a thread meeting more than this many would copy again, not fail.
    static let capacity = 1_024

    /// A thread's copies. An entry is found by its original's representation, read as two words so that looking
    /// touches no reference count of the shared original; the original is kept alive beside it, since a string made
    /// later at a freed original's address could otherwise share its representation.
    final class Copies {
        var copies: [Representation: String] = [:]
        /// The originals, only kept alive: looking one up would touch its count.
        var originals: [String] = []
    }

    /// A string's two words.
    struct Representation: Hashable {
        let low: UInt64
        let high: UInt64

        /// Feeds both words.
        func hash(into hasher: inout Hasher) {
            hasher.combine(low)
            hasher.combine(high)
        }

        /// Both words and the dictionary's seed in two multiplies, not a seeded `Hasher`: the words are addresses and
        /// counts of the gateway's own strings, not a caller's choosing (as `RateLimitKey`'s hash).
        func _rawHashValue(seed: Int) -> Int {
            var mixed = (low ^ UInt64(UInt(bitPattern: seed))) &* 0xFF51_AFD7_ED55_8CCD
            mixed = (mixed ^ high ^ (mixed >> 29)) &* 0xC4CE_B9FE_1A85_EC53
            return Int(truncatingIfNeeded: mixed ^ (mixed >> 32))
        }
    }

    /// The calling thread's copy of `string`.
    static func local(_ string: String) -> String {
        guard MemoryLayout<String>.size == 16 else { return string }
        let representation = self.representation(string)
        // The top bit of a string's second word marks it immortal in Swift's string ABI: a small string or a literal,
        // whose count is never written. Such a string is its own best copy. (Were the bit read wrong, the answer would
        // still be equal to the string; only the copy's purpose would be lost.)
        guard representation.high >> 63 == 0 else { return string }
        let copies = current()
        if let copy = copies.copies[representation] { return copy }
        if copies.copies.count >= capacity {
            copies.copies.removeAll(keepingCapacity: true)
            copies.originals.removeAll(keepingCapacity: true)
        }
        // A new object: `String(decoding:)` of the bytes never shares the original's storage.
        let copy = String(decoding: Array(string.utf8), as: UTF8.self)
        copies.copies[representation] = copy
        copies.originals.append(string)
        return copy
    }

    /// True when both strings are one representation: the same storage (or the same small string).
    static func sameRepresentation(_ left: String, _ right: String) -> Bool {
        MemoryLayout<String>.size == 16 && representation(left) == representation(right)
    }

    /// The two words of a 16-byte `String` (callers check the size).
    private static func representation(_ string: String) -> Representation {
        withUnsafeBytes(of: string) { words in
            Representation(low: words.loadUnaligned(as: UInt64.self), high: words.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        }
    }

    private static func current() -> Copies {
        if let value = pthread_getspecific(key) { return Unmanaged<Copies>.fromOpaque(value).takeUnretainedValue() }
        let copies = Copies()
        pthread_setspecific(key, Unmanaged.passRetained(copies).toOpaque())
        return copies
    }

    /// The thread-specific slot; its destructor releases a thread's copies when the thread ends.
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { value in
            #if canImport(Glibc)
            if let value { Unmanaged<Copies>.fromOpaque(value).release() }
            #else
            Unmanaged<Copies>.fromOpaque(value).release()
            #endif
        }
        return key
    }()
}
