// Throughput of the audit writer alone, per durability mode, against no audit at all.
//
//   swift run -c release audit-writer-bench [--records N] [--concurrency C] [--dir DIR] [--from-tasks] [--mode M]
//   (--mode commit|fsync|async: that mode alone, without the run with no audit: to compare two builds run by run)
//   (callers run on the event loops, as the data plane's connections do; --from-tasks drives them from tasks instead)
//   audit-writer-bench crash-child DB    (test helper: writes in commit mode, prints each acknowledged index)
import Crypto
import Foundation
import GatewayAudit
import GatewayCore
import NIOCore
import NIOPosix

/// Values a data plane has already computed when it records a call (hashes, keys): made once here, so the bench
/// measures the journal rather than the making of sample strings.
enum Sample {
    static let requestHash = String(repeating: "ab", count: 32)
    static let responseHash = String(repeating: "cd", count: 32)
    static let path = "/v2/accounts/acc_1/payment/transactions/{transaction_id}/captures"
    static let idempotencyKeys = (0..<1_024).map { _ in UUID().uuidString }
    static let callers = (0..<7).map { "caller-\($0)" }
    static let merchants = (0..<11).map { "merchant-\($0)" }
}

func sampleRecord(_ index: Int) -> CallRecord {
    var record = CallRecord(
        phase: index % 2 == 0 ? .intent : .outcome, requestID: "req-\(index)",
        timeMicros: Int64(Date().timeIntervalSince1970 * 1_000_000), method: "POST", path: Sample.path)
    record.facts.callerID = Sample.callers[index % 7]
    record.facts.authentication = .token
    record.facts.merchantID = Sample.merchants[index % 11]
    record.facts.partnerID = "partner-a"
    record.facts.environment = .test
    record.idempotencyKey = Sample.idempotencyKeys[index % Sample.idempotencyKeys.count]
    record.correlationID = "corr-\(index)"
    record.credential = CredentialRef(id: "partner:a:api-key", version: 1)
    record.requestBodySHA256 = Sample.requestHash
    record.requestBodyBytes = 300
    record.status = 201
    record.responseBodySHA256 = Sample.responseHash
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
        let fromTasks = arguments.contains("--from-tasks")
        let only = arguments.firstIndex(of: "--mode").flatMap { $0 + 1 < arguments.count ? AuditDurability(rawValue: arguments[$0 + 1]) : nil }
        let base = arguments.firstIndex(of: "--dir").map { arguments[$0 + 1] } ?? NSTemporaryDirectory()

        // The process's CPU time (every thread, user and system): records/s moves with whatever else the machine
        // runs, CPU per record much less, so a change to the writer is judged by the latter.
        func processCPUSeconds() -> Double {
            var time = timespec()
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
            return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
        }

        func report(_ label: String, _ started: ContinuousClock.Instant, cpuAtStart: Double) -> Double {
            let elapsed = ContinuousClock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let rate = Double(total) / seconds
            let cpuPerRecord = (processCPUSeconds() - cpuAtStart) * 1e6 / Double(total)
            print("\(label.padding(toLength: 8, withPad: " ", startingAt: 0)) \(String(format: "%10.0f", rate)) records/s  \(String(format: "%6.2f", cpuPerRecord)) µs CPU/record  (\(total) records, \(concurrency) concurrent callers, \(String(format: "%.2f", seconds)) s)")
            return rate
        }

        func run(_ label: String, _ journal: @escaping @Sendable (CallRecord, any EventLoop) -> EventLoopFuture<Void>) async throws -> Double {
            let started = ContinuousClock.now
            let cpuAtStart = processCPUSeconds()
            if fromTasks {
                // The previous driver: callers are tasks off the loops (each record crosses threads to be queued).
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
                return report(label, started, cpuAtStart: cpuAtStart)
            }
            // Each caller lives on an event loop and records its next call when the previous one is answered, as a
            // connection of the data plane does: so records arrive on the loops, the way the gateway makes them.
            var callers: [EventLoopFuture<Void>] = []
            for worker in 0..<concurrency {
                let loop = group.next()
                let finished = loop.makePromise(of: Void.self)
                @Sendable func call(_ index: Int) {
                    guard index < total else { return finished.succeed(()) }
                    journal(sampleRecord(index), loop).whenComplete { result in
                        switch result {
                        case .success: call(index + concurrency)
                        case .failure(let error): finished.fail(error)
                        }
                    }
                }
                loop.execute { call(worker) }
                callers.append(finished.futureResult)
            }
            for caller in callers { try await caller.get() }
            return report(label, started, cpuAtStart: cpuAtStart)
        }

        print("audit writer throughput, one writer, group commit")
        if only == nil { _ = try await run("off") { _, loop in loop.makeSucceededVoidFuture() } }
        for mode in AuditDurability.allCases where only == nil || mode == only {
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
