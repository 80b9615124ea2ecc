import GatewayApp
import Logging
import Testing

@Suite("ShutdownProgress")
struct ShutdownProgressTests {
    @Test("a step that lasts is named in the log until the next step, and nothing is said after the stop")
    func namesTheStepItWaitsOn() async throws {
        let capture = LogCapture()
        let progress = ShutdownProgress(logger: capture.logger(), patience: .milliseconds(50))
        progress.enter("the audit writer")
        // The bound is for a machine whose shared threads the full suite's other tests keep busy (10 s ran out
        // there twice); named at once, the test takes half a second.
        try await waitUntil("the step to be named") { capture.text.contains("step=the audit writer") }
        #expect(capture.text.contains("stop still waiting"))
        progress.enter("the admin listener")
        try await waitUntil("the next step to be named") { capture.text.contains("step=the admin listener") }
        progress.finish()
        let said = capture.text
        try await Task.sleep(for: .milliseconds(300))
        #expect(capture.text == said, "nothing is logged once the stop is over")
    }

    @Test("a stop whose steps end quickly says nothing")
    func quickStepsAreSilent() async throws {
        let capture = LogCapture()
        let progress = ShutdownProgress(logger: capture.logger(), patience: .seconds(5))
        progress.enter("calls in flight")
        progress.enter("the event loops")
        progress.finish()
        try await Task.sleep(for: .milliseconds(200))
        #expect(capture.text.isEmpty)
    }
}
