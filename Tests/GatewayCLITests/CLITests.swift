import Foundation
import GatewayTestSupport
import Testing

/// Runs the built `klarna-gateway` binary against a temporary config, store and key ring.
@Suite struct CLITests {
    static let plantedAPIKey = "klarna_test_api_PLANTEDSECRET_cli_7d3e0b5591aa"
    static let plantedMerchantKey = "klarna_test_api_PLANTEDMERCHANTKEY_cli_42"

    let directory: URL
    let config: String
    let binary = ChildProcess.productPath("klarna-gateway")

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        config = directory.appendingPathComponent("gateway.yaml").path
        try """
        node_id: cli-test
        storage: data/gateway.sqlite
        master_key:
          file: secrets/master.keys
        catalogue: catalogue/klarna-endpoints.tsv
        policies:
          access: policies/access.yaml
        listeners: []
        upstream:
          egress: []
          strip_headers: []
          connect_timeout_ms: 2000
          response_timeout_ms: 60000
          max_idle_per_key: 8
        limits:
          max_body_bytes: 1048576
          max_header_bytes: 6144
          max_headers_total_bytes: 20480
        reload_interval_ms: 1000
        log_level: info
        """.write(toFile: config, atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(
            at: directory.appendingPathComponent("secrets"), withIntermediateDirectories: true)
    }

    /// Every output of every command, to search for planted secrets at the end.
    final class Transcript: @unchecked Sendable {
        var text = ""
    }

    @discardableResult
    func run(
        _ arguments: [String], stdin: String? = nil, expect status: Int32 = 0, environment: [String: String] = [:], transcript: Transcript,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> (stdout: String, stderr: String) {
        let result = try await ChildProcess.run(
            binary, arguments + ["--config", config], environment: environment, directory: directory, stdin: stdin, timeout: .seconds(120))
        transcript.text += result.stdout + result.stderr
        #expect(
            result.status == status, "\(arguments.joined(separator: " ")): \(result.stderr)", sourceLocation: sourceLocation)
        return (result.stdout, result.stderr)
    }

    func write(_ text: String, _ name: String) throws -> String {
        let path = directory.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func administersAStoreEndToEnd() async throws {
        let log = Transcript()
        let pki = try TestPKI()
        let identity = try pki.issueClient(commonName: "acq_test mTLS")
        let (certificate, key) = try pki.write(identity, to: directory, name: "acq_test")
        let apiKeyFile = try write(CLITests.plantedAPIKey + "\n", "api.key")
        let merchantKeyFile = try write(CLITests.plantedMerchantKey, "merchant.key")

        // Without a key ring nothing opens.
        try await run(["partners", "list"], expect: 1, transcript: log)
        try await run(["keys", "init"], transcript: log)
        let ringPath = directory.appendingPathComponent("secrets/master.keys").path
        let ringMode = try FileManager.default.attributesOfItem(atPath: ringPath)[.posixPermissions] as! NSNumber
        #expect(ringMode.intValue == 0o600)
        let refused = try await run(["keys", "init"], expect: 1, transcript: log)
        #expect(refused.stderr.contains("refusing to overwrite"))

        // Partners: validation first, then the real thing.
        let liveKey = try write("klarna_live_api_" + "WRONGENV", "live.key")
        let wrongEnv = try await run(
            ["partners", "add", "acq_test", "--environment", "test", "--api-key-file", liveKey,
             "--client-cert", certificate.path, "--client-key", key.path], expect: 1, transcript: log)
        #expect(wrongEnv.stderr.contains("live key"))
        let otherKey = try write(try pki.issueClient(commonName: "other").privateKeyPEM, "other.key")
        let mismatch = try await run(
            ["partners", "add", "acq_test", "--environment", "test", "--api-key-file", apiKeyFile,
             "--client-cert", certificate.path, "--client-key", otherKey], expect: 1, transcript: log)
        #expect(mismatch.stderr.contains("does not match"))
        try await run(
            ["partners", "add", "acq_test", "--environment", "test", "--client-cert", certificate.path,
             "--client-key", key.path, "--api-key-file", "-"], stdin: CLITests.plantedAPIKey, transcript: log)
        let partners = try await run(["partners", "list"], transcript: log)
        #expect(partners.stdout.contains("acq_test"))
        #expect(partners.stdout.contains(String(CLITests.plantedAPIKey.suffix(4))))
        let shown = try await run(["partners", "show", "acq_test"], transcript: log)
        #expect(shown.stdout.contains(identity.fingerprint))
        try await run(["partners", "rotate-key", "acq_test", "--api-key-file", apiKeyFile], transcript: log)
        try await run(
            ["partners", "rotate-cert", "acq_test", "--client-cert", certificate.path, "--client-key", key.path],
            transcript: log)
        #expect(try await run(["partners", "show", "acq_test"], transcript: log).stdout.contains("client-key@v2"))

        // Merchants.
        try await run(
            ["merchants", "add", "m_direct", "--partner", "acq_test", "--account", "krn:partner:global:account:test:DIRECT1",
             "--group", "eu", "--group", "direct", "--api-key-file", merchantKeyFile], transcript: log)
        let liveAccount = try await run(
            ["merchants", "add", "m_bad", "--partner", "acq_test", "--account", "krn:partner:global:account:live:X1"],
            expect: 1, transcript: log)
        #expect(liveAccount.stderr.contains("live account"))
        try await run(
            ["merchants", "add", "krn:evil", "--partner", "acq_test", "--account", "krn:partner:global:account:test:X2"],
            expect: 1, transcript: log)
        try await run(["merchants", "suspend", "m_direct"], transcript: log)
        #expect(try await run(["merchants", "show", "m_direct"], transcript: log).stdout.contains("suspended"))
        try await run(["merchants", "resume", "m_direct"], transcript: log)

        // Import: a bad file changes nothing and names its lines; a good one of 10,000 rows is imported whole, and
        // its time reported (not judged: the parallel suite on a loaded machine sets it more than the import does).
        let bad = try write(
            "id,partner,account\nm_ok,acq_test,krn:partner:global:account:test:OK1\nm_x,ghost,krn:partner:global:account:test:X\n"
                + "m_y,acq_test,not-a-krn\n", "bad.csv")
        let badImport = try await run(["merchants", "import", bad], expect: 1, transcript: log)
        #expect(badImport.stderr.contains("line 3"))
        #expect(badImport.stderr.contains("line 4"))
        var csv = "id,partner,account,group\n"
        for index in 0..<10_000 { csv += "m_\(index),acq_test,krn:partner:global:account:test:BULK\(index),bulk;g\(index % 7)\n" }
        let csvPath = try write(csv, "merchants.csv")
        let started = ContinuousClock.now
        let imported = try await run(["merchants", "import", csvPath], transcript: log)
        let elapsed = ContinuousClock.now - started
        print("merchants import of 10,000 rows (whole process): \(elapsed); \(imported.stdout)")
        #expect(imported.stdout.contains("imported 10000 merchants"))
        let listed = try await run(["merchants", "list"], transcript: log)
        #expect(listed.stdout.split(separator: "\n").count == 10_001)
        try await run(["merchants", "remove", "m_0"], transcript: log)
        try await run(["merchants", "remove", "m_0"], expect: 1, transcript: log)

        // Callers: the token alone on stdout.
        let added = try await run(["callers", "add", "checkout"], transcript: log)
        let token = added.stdout.trimmingCharacters(in: .newlines)
        #expect(added.stdout == token + "\n")
        #expect(token.hasPrefix("kgw_") && token.count == 64)
        try await run(["callers", "add", "batch", "--cert-fingerprint", identity.fingerprint, "--no-token"], transcript: log)
        let rotated = try await run(["callers", "rotate-token", "checkout"], transcript: log)
        #expect(rotated.stdout.hasPrefix("kgw_") && !rotated.stdout.contains(token))
        try await run(["callers", "revoke", "batch"], transcript: log)
        let callers = try await run(["callers", "list"], transcript: log)
        #expect(callers.stdout.contains("batch\trevoked"))
        #expect(!callers.stdout.contains(String(token.suffix(43))))

        // Master key rotation re-seals and everything still opens.
        try await run(["keys", "rotate"], transcript: log)
        #expect(try String(contentsOfFile: ringPath, encoding: .utf8).contains("\nv2 "))
        let afterRotation = try await run(["partners", "list"], transcript: log)
        #expect(afterRotation.stdout.contains(String(CLITests.plantedAPIKey.suffix(4))))

        // A key ring others can read stops every command.
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: ringPath)
        let open = try await run(["partners", "list"], expect: 1, transcript: log)
        #expect(open.stderr.contains("chmod 600"))
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: ringPath)

        // Nothing printed, and nothing stored in plaintext, holds a planted secret.
        // (The caller token is printed by design, once; the planted credentials never are.)
        let keyLine = String(identity.privateKeyPEM.split(separator: "\n")[1])
        for needle in ["PLANTEDSECRET", "PLANTEDMERCHANTKEY", keyLine] {
            #expect(!log.text.contains(needle), "a command printed \(needle.prefix(20))…")
        }
        let database = directory.appendingPathComponent("data/gateway.sqlite").path
        for suffix in ["", "-wal", "-shm"] {
            guard let bytes = FileManager.default.contents(atPath: database + suffix) else { continue }
            for needle in ["PLANTEDSECRET", "PLANTEDMERCHANTKEY", keyLine, String(token.suffix(43))] {
                #expect(bytes.range(of: Data(needle.utf8)) == nil, "\(needle) in \(database + suffix)")
            }
            let mode = try FileManager.default.attributesOfItem(atPath: database + suffix)[.posixPermissions] as! NSNumber
            #expect(mode.intValue == 0o600, "\(database + suffix)")
        }
    }

    /// Issue 16: the store commands validate only what they use; `check` (and `serve`) still validate everything.
    @Test func storeCommandsIgnoreABrokenListenerSection() async throws {
        let log = Transcript()
        // Plain HTTP on a public address, a port that is not a number, a TLS certificate that does not exist, an
        // upstream timeout of the wrong type: each stops `serve`, none concerns the store.
        var text = try String(contentsOfFile: config, encoding: .utf8)
        text = text.replacingOccurrences(of: "listeners: []", with: """
            listeners:
              - name: public
                address: 0.0.0.0
                port: eight-four-four-three
              - name: tls
                address: 0.0.0.0
                port: 8443
                tls:
                  certificate: tls/missing.pem
                  private_key: tls/missing.key
            """)
        text = text.replacingOccurrences(of: "connect_timeout_ms: 2000", with: "connect_timeout_ms: soon")
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        let pki = try TestPKI()
        let (certificate, key) = try pki.write(try pki.issueClient(commonName: "acq_test mTLS"), to: directory, name: "acq_test")
        let apiKeyFile = try write(CLITests.plantedAPIKey, "api.key")

        try await run(["keys", "init"], transcript: log)
        try await run(
            ["partners", "add", "acq_test", "--environment", "test", "--api-key-file", apiKeyFile,
             "--client-cert", certificate.path, "--client-key", key.path], transcript: log)
        try await run(
            ["merchants", "add", "m_1", "--partner", "acq_test", "--account", "krn:partner:global:account:test:M1"], transcript: log)
        #expect(try await run(["merchants", "list"], transcript: log).stdout.contains("m_1"))
        try await run(["callers", "add", "checkout"], transcript: log)
        try await run(["migrate"], transcript: log)

        let checked = try await run(["check"], expect: 1, transcript: log)
        #expect(checked.stderr.contains("listeners"), "check did not name the broken listener: \(checked.stderr)")
        #expect(!log.text.contains("PLANTEDSECRET"))
    }

    @Test func errorsAreOneLineWithoutStackTraces() async throws {
        let log = Transcript()
        let missing = try await run(["merchants", "show", "nobody"], expect: 1, transcript: log)
        #expect(missing.stderr.hasPrefix("error: "))
        #expect(!missing.stderr.contains("Fatal error"))
        try await run(["keys", "init"], transcript: log)
        let absent = try await run(["merchants", "show", "nobody"], expect: 1, transcript: log)
        #expect(absent.stderr == "error: no merchant with id 'nobody'\n")
    }
}
