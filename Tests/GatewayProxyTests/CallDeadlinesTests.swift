import GatewayCore
@testable import GatewayProxy
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

/// The per-loop deadline heap on its own: what fires, in which order, and what a disarm takes out.
@Suite("Call deadlines, one heap per loop")
struct CallDeadlinesTests {
    final class Owner: CallDeadlineOwner {
        var fired: [String] = []
        func deadlineReached(_ call: CallState) { fired.append(call.requestID) }
    }

    static func call(_ id: String) -> CallState {
        CallState(
            requestID: id, head: HTTPRequestHead(version: .http1_1, method: .GET, uri: "/"), clientAddress: nil,
            machine: CallMachine(maxBodyBytes: 1, maxHeldResponseBytes: 1, isHTTP2: false, keepAlive: true))
    }

    @Test("deadlines fire earliest first, a disarmed or moved one as it now stands, and one task serves them all")
    func order() {
        let loop = EmbeddedEventLoop()
        let deadlines = CallDeadlines(eventLoop: loop)
        let owner = Owner()
        let calls = (0..<6).map { Self.call("c\($0)") }
        // Times far in the past of the real clock, so all are due once the loop's own clock reaches them.
        for (call, at) in zip(calls, [50, 10, 40, 20, 60, 30] as [Int64]) { deadlines.arm(call, owner: owner, at: at) }
        deadlines.disarm(calls[3])
        deadlines.disarm(calls[3])
        deadlines.arm(calls[4], owner: owner, at: 5)
        #expect(deadlines.count == 5)
        #expect(calls[3].deadlineSlot == -1)
        loop.advanceTime(to: .uptimeNanoseconds(4))
        #expect(owner.fired.isEmpty)
        loop.advanceTime(to: .uptimeNanoseconds(100))
        #expect(owner.fired == ["c4", "c1", "c5", "c2", "c0"])
        #expect(deadlines.count == 0)
        #expect(calls.allSatisfy { $0.deadlineSlot == -1 })
    }

    @Test("random arms and disarms keep the heap ordered: everything armed fires once, in time order, nothing disarmed fires")
    func randomised() {
        let loop = EmbeddedEventLoop()
        let deadlines = CallDeadlines(eventLoop: loop)
        let owner = Owner()
        var generator = SeededGenerator(seed: 7)
        let calls = (0..<300).map { Self.call("c\($0)") }
        var expected: [String: Int64] = [:]
        for _ in 0..<2_000 {
            let call = calls[Int.random(in: 0..<calls.count, using: &generator)]
            if Bool.random(using: &generator) {
                let at = Int64.random(in: 1...1_000_000, using: &generator)
                deadlines.arm(call, owner: owner, at: at)
                expected[call.requestID] = at
            } else {
                deadlines.disarm(call)
                expected[call.requestID] = nil
            }
        }
        #expect(deadlines.count == expected.count)
        loop.advanceTime(to: .uptimeNanoseconds(2_000_000))
        #expect(owner.fired.count == expected.count)
        #expect(Set(owner.fired) == Set(expected.keys))
        let times = owner.fired.map { expected[$0]! }
        #expect(times == times.sorted())
    }
}
