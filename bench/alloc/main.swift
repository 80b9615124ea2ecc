// Allocations per proxied call, counted in a gateway process that runs nothing else: the upstream (the
// simulator) and the client (curl) are processes of their own, so every counted allocation is the gateway's.
//
//   LD_PRELOAD=.build/debug/libMallocInterposerSwift.so gateway-alloc-count CONFIG NAME CURL_SMALL CURL_LARGE CALLS ...
//
// For each scenario NAME, curl runs the calls of config file CURL_SMALL, then those of CURL_LARGE, each over one
// connection; CURL_LARGE holds CALLS calls more. The difference between the two counts, divided by CALLS, is the
// cost of one call with the connection's set-up taken out. Each line printed: `NAME allocations_per_call=N.N`.
// bench/alloc-count.sh provisions everything and compares the counts with bench/alloc-thresholds.
#if canImport(Glibc)
import Glibc
#endif
import GatewayApp
import GatewayProxy
import Logging
import MallocInterposerSwift

@main
struct AllocCount {
    static func main() async throws {
        let arguments = CommandLine.arguments
        guard arguments.count >= 6, (arguments.count - 2) % 4 == 0 else {
            print("usage: gateway-alloc-count CONFIG NAME CURL_SMALL CURL_LARGE CALLS [NAME CURL_SMALL CURL_LARGE CALLS]...")
            exit(2)
        }
        let config = try ConfigLoader.loadGateway(path: arguments[1])
        let logger = Logger(label: "alloc-count") { _ in SwiftLogNoOpLogHandler() }
        let credentials = try await CredentialLoader.open(config: config)
        // No reload loop running (`run()` is never called): only the calls themselves allocate. The audit trail is
        // off unless the configuration turns it on (AUDIT_MODE in bench/alloc-count.sh); then it is wired as
        // `serve` wires it, and the writer's thread's allocations count too.
        let journals = try await CallJournals.open(config: config, credentials: credentials, logger: logger)
        let service = try await GatewayService.start(
            config: config, credentials: credentials, journal: journals.journal, logger: logger, threads: 1)
        var failed = false
        var index = 2
        while index < arguments.count {
            let name = arguments[index]
            let small = arguments[index + 1]
            let large = arguments[index + 2]
            guard let calls = Int(arguments[index + 3]), calls > 0 else { fatalError("CALLS must be a positive number") }
            index += 4
            // Once unmeasured, so that first-call work (lazy metadata, caches, pooled connections) is not counted.
            _ = try count(curlConfig: small)
            let few = try count(curlConfig: small)
            let many = try count(curlConfig: large)
            let perCall = Double(many - few) / Double(calls)
            print("\(name) allocations_per_call=\((perCall * 10).rounded() / 10)")
            if perCall <= 0 { failed = true }
        }
        await service.shutdown()
        await journals.audit?.shutdown()
        if failed { exit(1) }
    }

    /// Allocations made in this process while one curl process runs `-K curlConfig` to its end.
    static func count(curlConfig: String) throws -> Int {
        // Everything the spawn needs is made before counting starts.
        let words: [String] = ["curl", "-sS", "-K", curlConfig]
        let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        var status: Int32 = 0
        MallocInterposerSwift.initialize()
        MallocInterposerSwift.hook()
        let spawned = posix_spawnp(&pid, "curl", nil, nil, argv, environ)
        if spawned == 0 { waitpid(pid, &status, 0) }
        MallocInterposerSwift.unhook()
        guard spawned == 0 else { throw SpawnError(message: "curl could not be started: \(String(cString: strerror(spawned)))") }
        guard status == 0 else { throw SpawnError(message: "curl -K \(curlConfig) failed (wait status \(status))") }
        return MallocInterposerSwift.getStatistics().mallocCount
    }
}

struct SpawnError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
