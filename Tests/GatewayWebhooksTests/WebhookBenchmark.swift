import Foundation
import GatewayCore
import GatewayTestSupport
import NIOConcurrencyHelpers
import NIOCore
import Testing

/// `bench/webhooks.sh`: verified and persisted events per second at the webhook listener (each answer 200 means the
/// event is committed in the store), and the delivery lag from that answer to the receiver, with a healthy
/// receiver. Off unless `KGW_WEBHOOK_BENCH=1`: it measures, it does not assert figures.
@Suite("Webhook benchmark")
struct WebhookBenchmark {
    static var enabled: Bool { ProcessInfo.processInfo.environment["KGW_WEBHOOK_BENCH"] == "1" }

    @Test(.enabled(if: enabled, "set KGW_WEBHOOK_BENCH=1 (bench/webhooks.sh)"), .timeLimit(.minutes(10)))
    func throughputAndLag() async throws {
        let environment = ProcessInfo.processInfo.environment
        let total = Int(environment["KGW_WEBHOOK_BENCH_EVENTS"] ?? "") ?? 4_000
        let connections = Int(environment["KGW_WEBHOOK_BENCH_CONNECTIONS"] ?? "") ?? 32
        try await withWebhooks(environment: ["KGW_LOG_LEVEL": "warning"]) { hooks in
            let secret = Secret("bench-signing-secret-\(UUID().uuidString)")
            let secretFile = hooks.directory.appendingPathComponent("bench-key").path
            try secret.exposedValue.write(toFile: secretFile, atomically: true, encoding: .utf8)
            try await hooks.cli(["webhooks", "keys", "add", "--partner", "acq", "--key-id", "bench-key", "--secret-file", secretFile])
            func body(_ id: String) -> [UInt8] {
                Array(("{\"metadata\":{\"event_type\":\"payment.transaction.captured\",\"event_id\":\"\(id)\",\"event_version\":\"v2\","
                    + "\"subject_account_id\":\"krn:partner:global:account:test:M1\",\"live\":false},\"payload\":{\"amount\":1000}}").utf8)
            }
            func post(_ client: TestHTTPClient, _ id: String) async throws -> Int {
                let bytes = body(id)
                return try await client.send("POST", "/klarna/webhooks/acq", headers: [
                    ("Content-Type", "application/json"), ("Klarna-Signing-Key-Id", "bench-key"),
                    ("Klarna-Signature", KlarnaWebhookSignature.sign(body: bytes, secret: secret)),
                ], body: bytes).status
            }
            // The key reaches the running gateway on its next reload.
            let warm = hooks.webhookClient()
            var status = 0
            for attempt in 0..<200 where status != 200 {
                status = try await post(warm, "warm-\(attempt)")
                if status != 200 { try await Task.sleep(for: .milliseconds(20)) }
            }
            try? await warm.close()
            #expect(status == 200)

            let acknowledged = NIOLockedValueBox<[String: UInt64]>([:])
            let started = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for connection in 0..<connections {
                    group.addTask {
                        let client = hooks.webhookClient()
                        for index in stride(from: connection, to: total, by: connections) {
                            let id = "bench-\(index)"
                            let status = try await post(client, id)
                            guard status == 200 else { throw WaitTimeout(what: "200 for \(id), got \(status)") }
                            let now = UInt64(NIODeadline.now().uptimeNanoseconds)
                            acknowledged.withLockedValue { $0[id] = now }
                        }
                        try? await client.close()
                    }
                }
                try await group.waitForAll()
            }
            let elapsed = ContinuousClock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let ids = Set((0..<total).map { "bench-\($0)" })
            let delivered = try await hooks.waitForDelivered(hooks.orders, ids: ids, timeout: .seconds(300))
            let acks = acknowledged.withLockedValue { $0 }
            var first: [String: UInt64] = [:]
            for delivery in delivered {
                guard let id = delivery.header("webhook-id"), ids.contains(id) else { continue }
                first[id] = min(first[id] ?? .max, delivery.atNanoseconds)
            }
            let lags = first.compactMap { id, at in acks[id].map { Double(Int64(at) - Int64($0)) / 1e6 } }.sorted()
            func percentile(_ p: Double) -> Double { lags.isEmpty ? 0 : lags[min(lags.count - 1, Int(Double(lags.count) * p))] }
            let line = String(
                format: "webhook bench: %d events over %d connections in %.2f s: %.0f verified+persisted events/s; delivery lag p50 %.1f ms, p99 %.1f ms, max %.1f ms",
                total, connections, seconds, Double(total) / seconds, percentile(0.5), percentile(0.99), lags.last ?? 0)
            print(line)
            if let out = environment["KGW_WEBHOOK_BENCH_OUT"] { try (line + "\n").write(toFile: out, atomically: true, encoding: .utf8) }
            #expect(lags.count == total)
        }
    }
}
