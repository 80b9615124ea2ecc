import Foundation
import GatewayCore
import Synchronization

// Hot-path decisions, measured in a release build: `swift run -c release gateway-microbench`.
// Each figure is the mean over many iterations after a warm-up; run it beside other work and compare ratios,
// not absolutes (these machines are noisy).

/// BENCH_SCALE shrinks every loop (e.g. 0.01 under valgrind, whose instruction counts ignore machine load).
let scale = Double(ProcessInfo.processInfo.environment["BENCH_SCALE"] ?? "1") ?? 1

func measure(_ name: String, iterations: Int = 1_000_000, _ body: (Int) -> Void) {
    let iterations = max(1, Int(Double(iterations) * scale))
    for index in 0..<(iterations / 10) { body(index) }
    let start = DispatchTime.now().uptimeNanoseconds
    let cpuStart = threadCPUNanoseconds()
    for index in 0..<iterations { body(index) }
    let cpu = threadCPUNanoseconds() - cpuStart
    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start)
    // CPU time beside wall time: another process on the same cores inflates the wall time far more.
    print(String(format: "%-46@ %8.1f ns/op, %8.1f ns of CPU per op", name as NSString, elapsed / Double(iterations), cpu / Double(iterations)))
}

/// This thread's CPU time so far.
func threadCPUNanoseconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return Double(time.tv_sec) * 1e9 + Double(time.tv_nsec)
}

let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let catalogue = try OperationCatalogue(tsv: String(contentsOf: root.appendingPathComponent("config/catalogue/operations.tsv"), encoding: .utf8))
let paths: [(String, Substring)] = catalogue.operations.map { operation in
    let path = operation.templateSegments.map { $0 == "{partner_account_id}" ? "krn:partner:global:account:test:M1" : ($0.hasPrefix("{") ? "x1" : String($0)) }
    return (operation.method, Substring("/" + path.joined(separator: "/")))
}
var sink = 0
measure("operation match (all 128 templates in turn)") { index in
    let (method, path) = paths[index % paths.count]
    if case .success(let match) = catalogue.matcher.match(method: method, path: path) { sink &+= match.segments.count }
}

let limiter = RateLimiter()
let policy = RateLimitPolicy(
    merchant: [.test: CategoryLimits(default: LimitSpec(rate: 1e9, burst: 1_000_000))],
    partner: [.test: CategoryLimits(default: LimitSpec(rate: 1e9, burst: 1_000_000))],
    caller: LimitSpec(rate: 1e9, burst: 1_000_000))
// The category made at run time, as the catalogue's are: a literal's storage is never reference counted, so it hid
// what two threads retaining one shared string cost (docs/performance.md, request path, fourteenth round).
let heapCategory = String(decoding: Array("payment-transaction-management".utf8), as: UTF8.self)
// Resolved as the gateway resolves them when a snapshot is built (per-partner and per-caller overrides).
let subjects = (0..<1000).map {
    RateLimitSubject(
        callerID: "caller\($0 % 4)", merchantID: "m\($0)", merchantGroups: [], partnerID: "acq", environment: .test, category: heapCategory,
        resolved: ResolvedRateLimits(partner: policy.partnerLimits(partnerID: "acq", environment: .test), caller: policy.callerLimit(callerID: "caller\($0 % 4)")))
}
var now: Int64 = 0
measure("rate-limit decision (merchant+partner+caller)") { index in
    now += 1000
    if limiter.decide(subjects[index % subjects.count], policy: policy, now: now) == .admit { sink &+= 1 }
}

// Two event loops decide at once (each with its own merchants, the same partner): what the loops share (the
// partner's key, its loans, the stripes) is where they meet, so this is the figure a two-loop gateway sees.
func measureConcurrently(_ name: String, threads: Int, iterations: Int = 1_000_000, _ body: @escaping @Sendable (Int, Int) -> Void) {
    let iterations = max(1, Int(Double(iterations) * scale))
    let done = DispatchGroup()
    let cpu = Mutex<Double>(0)
    let start = DispatchTime.now().uptimeNanoseconds
    for thread in 0..<threads {
        done.enter()
        Thread {
            let before = threadCPUNanoseconds()
            for index in 0..<iterations { body(thread, index) }
            let used = threadCPUNanoseconds() - before
            cpu.withLock { $0 += used }
            done.leave()
        }.start()
    }
    done.wait()
    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start)
    // The CPU time is the figure to compare on a machine shared with other work: the wall time also counts the
    // time a thread waited for a core.
    let cpuPerOp = cpu.withLock { $0 } / Double(threads * iterations)
    print(String(format: "%-46@ %8.1f ns/op per thread, %8.1f ns of CPU per op", name as NSString, elapsed / Double(iterations), cpuPerOp))
}

// The monotonic clock is far past the single-threaded run's made-up instants (0 to 1 s), so no TAT lies ahead of it:
// a TAT ahead would make every decision a refusal (an error rendered), which is not what this measures.
let refusedBefore = limiter.counts.values.reduce(0) { $0 + $1.refused }
// Each thread reads the monotonic clock, as each event loop does (`NIODeadline.now()`): a clock shared through one
// atomic counter, as this bench used before, adds a cache line moved between the cores per decision that no gateway
// has. That figure stays printed below for comparison with earlier readings.
measureConcurrently("rate-limit decision, two threads at once", threads: 2) { thread, index in
    let now = Int64(DispatchTime.now().uptimeNanoseconds)
    _ = limiter.decide(subjects[(index % 500) * 2 + thread], policy: policy, now: now)
}
let sharedClock = Atomic<Int64>(Int64(DispatchTime.now().uptimeNanoseconds))
measureConcurrently("  the same, one clock shared by both threads", threads: 2) { thread, index in
    let now = sharedClock.add(1000, ordering: .relaxed).newValue
    _ = limiter.decide(subjects[(index % 500) * 2 + thread], policy: policy, now: now)
}
print("rate-limit refusals: \(refusedBefore) single-threaded, \(limiter.counts.values.reduce(0) { $0 + $1.refused } - refusedBefore) with two threads")

let token = CallerToken.generate()
let merchants = (0..<100_000).map {
    MerchantState(record: MerchantRecord(id: "m\($0)", partnerID: "acq", account: AccountKRN("krn:partner:global:account:test:M\($0)")!), ownKey: nil, form: .rawKey)
}
let partner = PartnerState(
    record: PartnerRecord(id: "acq", environment: .test, baseURL: "https://localhost:9443", apiKey: CredentialRef(id: "k", version: 1),
                          clientCertificatePEM: "", clientKey: CredentialRef(id: "c", version: 1)),
    apiKey: Secret("klarna_test_api_" + String(repeating: "0", count: 40)), clientKeyPEM: Secret(""), certificateFingerprint: "ab")!
let snapshot = GatewaySnapshot(
    partners: [partner], merchants: merchants,
    callers: [CallerRecord(id: "caller", tokenID: token.id, tokenHash: token.secretHash, certificateFingerprint: nil)],
    access: AccessPolicy(callers: ["caller": Grant(merchants: ["*"], families: ["*"])]), catalogue: catalogue,
    settings: PipelineSettings(egress: [EgressRule(host: "localhost:9443", environment: .test)]), version: 1)
let pipeline = RequestPipeline()
let headers = HeaderList([("Host", "gw"), ("Authorization", "Bearer " + token.rendered.exposedValue), ("Klarna-Gateway-Merchant", "m1")])
let target = "/v2/accounts/krn:partner:global:account:test:M1/payment/transactions/krn:payment:eu1:transaction:6debe89e"
measure("full pure pipeline (auth→inject), 100k merchants", iterations: 200_000) { _ in
    if case .success(let plan) = pipeline.plan(
        IngressRequest(method: "GET", target: target, headers: headers, clientCertificateFingerprint: nil),
        requestID: "0f0e0d0c-0b0a-4908-8706-050403020100", snapshot: snapshot, today: "2026-11-28")
    { sink &+= plan.upstream.headers.count }
}
// Two event loops plan at once from one snapshot, as a gateway's do: what both threads touch (the snapshot's
// partners, callers and catalogue, their reference counts) moves between the cores.
measureConcurrently("full pure pipeline, two threads at once", threads: 2, iterations: 100_000) { _, _ in
    if case .success(let plan) = pipeline.plan(
        IngressRequest(method: "GET", target: target, headers: headers, clientCertificateFingerprint: nil),
        requestID: "0f0e0d0c-0b0a-4908-8706-050403020100", snapshot: snapshot, today: "2026-11-28")
    { withExtendedLifetime(plan) {} }
}
print("(checksum \(sink))")
