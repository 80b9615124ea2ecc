import GatewayCore
import Testing

@Suite("withDeadline")
struct DeadlineTests {
    struct Late: Error {}
    struct Failed: Error {}

    @Test("a body that never answers is left behind at the deadline, not waited for", .timeLimit(.minutes(1)))
    func bodyThatNeverAnswers() async throws {
        let started = ContinuousClock.now
        await #expect(throws: Late.self) {
            // An hour: cancellation cannot end it (the body runs in a task of its own), only the deadline can.
            try await withDeadline(.milliseconds(100), { Late() }) { try await Task.sleep(for: .seconds(3600)) }
        }
        // Generous: proves the hour was not waited for, not how fast the deadline fires.
        #expect(ContinuousClock.now - started < .seconds(600))
    }

    @Test("a body that answers in time gives its value or its error")
    func bodyInTime() async throws {
        #expect(try await withDeadline(.seconds(60), { Late() }) { 42 } == 42)
        await #expect(throws: Failed.self) {
            try await withDeadline(.seconds(60), { Late() }) { () async throws -> Int in throw Failed() }
        }
    }
}
