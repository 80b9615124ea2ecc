// Throughput of the audit writer alone, per durability mode, against no audit at all.
//
//   swift run -c release audit-writer-bench [--records N] [--concurrency C] [--dir DIR]
//   audit-writer-bench crash-child DB    (test helper: writes in commit mode, prints each acknowledged index)
import Crypto
import Foundation
import GatewayAudit
import GatewayCore
import NIOCore
import NIOPosix

func sampleRecord(_ index: Int) -> CallRecord {
    var record = CallRecord(
        phase: index % 2 == 0 ? .intent : .outcome, requestID: "req-\(index)",
        timeMicros: Int64(Date().timeIntervalSince1970 * 1_000_000), method: "POST",
        path: "/v2/accounts/acc_1/payment/transactions/{transaction_id}/captures")
    record.facts.callerID = "caller-\(index % 7)"
    record.facts.authentication = .token
    record.facts.merchantID = "merchant-\(index % 11)"
    record.facts.partnerID = "partner-a"
    record.facts.environment = .test
    record.idempotencyKey = UUID().uuidString
    record.correlationID = "corr-\(index)"
    record.credential = CredentialRef(id: "partner:a:api-key", version: 1)
    record.requestBodySHA256 = String(repeating: "ab", count: 32)
    record.requestBodyBytes = 300
    record.status = 201
    record.responseBodySHA256 = String(repeating: "cd", count: 32)
    record.responseBodyBytes = 800
    record.upstreamAttempts = 1
    record.upstreamLatencyMicros = 25_000
    return record
}

@main
enum AuditWriterBench {
    static func main() async throws {
        let arguments = CommandLine.arguments
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let signer = AuditSigner(privateKey: Curve25519.Signing.PrivateKey(), keyID: "bench")

        if arguments.count >= 3, arguments[1] == "crash-child" {
            let writer = AuditWriter(path: arguments[2], nodeID: "crash", mode: .commit, signer: signer, checkpointEveryRecords: 100)
            var index = 1
            while true {
                try await writer.record(sampleRecord(index), on: group.next()).get()
                FileHandle.standardOutput.write(Data("\(index)\n".utf8))
                index += 1
            }
        }

        func option(_ name: String, _ fallback: Int) -> Int {
            guard let at = arguments.firstIndex(of: name), at + 1 < arguments.count else { return fallback }
            return Int(arguments[at + 1]) ?? fallback
        }
        let total = option("--records", 100_000)
        let concurrency = option("--concurrency", 64)
        let base = arguments.firstIndex(of: "--dir").map { arguments[$0 + 1] } ?? NSTemporaryDirectory()

        func run(_ label: String, _ journal: @escaping @Sendable (CallRecord, any EventLoop) -> EventLoopFuture<Void>) async throws -> Double {
            let started = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                for worker in 0..<concurrency {
                    tasks.addTask {
                        let loop = group.next()
                        var index = worker
                        while index < total {
                            try await journal(sampleRecord(index), loop).get()
                            index += concurrency
                        }
                    }
                }
                try await tasks.waitForAll()
            }
            let elapsed = ContinuousClock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let rate = Double(total) / seconds
            print("\(label.padding(toLength: 8, withPad: " ", startingAt: 0)) \(String(format: "%10.0f", rate)) records/s  (\(total) records, \(concurrency) concurrent callers, \(String(format: "%.2f", seconds)) s)")
            return rate
        }

        print("audit writer throughput, one writer, group commit")
        _ = try await run("off") { _, loop in loop.makeSucceededVoidFuture() }
        for mode in AuditDurability.allCases {
            let directory = URL(fileURLWithPath: base).appendingPathComponent("audit-bench-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let writer = AuditWriter(
                path: directory.appendingPathComponent("audit.sqlite").path, nodeID: "bench", mode: mode, signer: signer,
                checkpointFile: directory.appendingPathComponent("checkpoints.jsonl").path, queueLimit: total + concurrency)
            let started = ContinuousClock.now
            _ = try await run(mode.rawValue) { record, loop in writer.record(record, on: loop) }
            await writer.flush()
            if mode == .async {
                // Acknowledgement is not durability: report the rate at which records actually reached the store.
                let elapsed = ContinuousClock.now - started
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                print("async    \(String(format: "%10.0f", Double(total) / seconds)) records/s  written (including the final flush)")
            }
            await writer.shutdown()
            try? FileManager.default.removeItem(at: directory)
        }
        try await group.shutdownGracefully()
    }
}
