import Foundation
@testable import GatewayCore
import Testing

/// `ThreadLocalStrings`: each thread gets its own object for a long shared string, equal to it byte for byte.
@Suite("Each thread's copies of shared strings")
struct ThreadLocalStringsTests {
    /// The second word of a string's representation: its storage's address for a native string.
    static func storage(_ string: String) -> UInt64 {
        withUnsafeBytes(of: string) { $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self) }
    }

    static func onNewThread<Result: Sendable>(_ body: @escaping @Sendable () -> Result) async -> Result {
        await withCheckedContinuation { (done: CheckedContinuation<Result, Never>) in
            Thread { done.resume(returning: body()) }.start()
        }
    }

    @Test("a long string gets one copy per thread, equal to it, kept for the thread's later calls; a small one is itself")
    func copiesPerThread() async {
        let shared = String(decoding: Array("payment-transaction-management".utf8), as: UTF8.self)
        let small = "acq"
        // The copies themselves come back, not their addresses: a thread's copies are freed when it ends, and the next
        // thread's could be made at the same address.
        let (first, again, smallCopy) = await Self.onNewThread {
            (ThreadLocalStrings.local(shared), ThreadLocalStrings.local(shared), ThreadLocalStrings.local(small))
        }
        let other = await Self.onNewThread { ThreadLocalStrings.local(shared) }
        #expect(Self.storage(first) != Self.storage(shared))
        #expect(Self.storage(again) == Self.storage(first))
        #expect(Self.storage(other) != Self.storage(first) && Self.storage(other) != Self.storage(shared))
        #expect(smallCopy == small)
        // A literal is never reference counted: it is returned as it is, which also checks the reading of the ABI's
        // immortal bit on this platform.
        let literal = "a literal longer than fifteen bytes"
        #expect(Self.storage(ThreadLocalStrings.local(literal)) == Self.storage(literal))
        let copy = await Self.onNewThread { ThreadLocalStrings.local(shared) }
        #expect(copy == shared && Array(copy.utf8) == Array(shared.utf8))
    }

    @Test("two long strings get copies of their own content; past the capacity the thread starts again, still right")
    func copiesStayApart() async {
        let (matches, afterReset) = await Self.onNewThread { () -> (Bool, Bool) in
            let one = String(decoding: Array("category-number-one-and-long".utf8), as: UTF8.self)
            let two = String(decoding: Array("category-number-two-and-long".utf8), as: UTF8.self)
            let matches = ThreadLocalStrings.local(one) == one && ThreadLocalStrings.local(two) == two
            for index in 0...ThreadLocalStrings.capacity { _ = ThreadLocalStrings.local("a long string made at run time \(index)") }
            return (matches, ThreadLocalStrings.local(one) == one)
        }
        #expect(matches)
        #expect(afterReset)
    }
}
