import Foundation

/// Writes a ready-to-run simulator directory (`klarna-simulator init`): a fresh CA, server and acquirer
/// certificates, a random test API key, and a `simulator.yaml` that uses them by relative path.
public enum SimulatorInit {
    /// What was written, for printing.
    public struct Result: Sendable {
        /// Files written, relative to the directory.
        public let files: [String]
        /// Path of the configuration.
        public let configurationPath: String
    }

    /// Writes everything into `directory` (created when missing); existing files are replaced.
    public static func write(directory: String, merchants: Int, port: Int, controlPort: Int, catalogueFile: String?) throws -> Result {
        let base = URL(fileURLWithPath: directory)
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        let (ca, caKeyPEM) = try SimulatorPKI.makeCA()
        let server = try ca.issueServer()
        let acquirer = try ca.issueClient(commonName: "ACQ1 acquirer")
        let apiKey = "klarna_test_api_" + SimulatorID.secret(bytes: 32)
        var merchantLines = ""
        for index in 1...max(1, merchants) {
            merchantLines += "  - {krn: \"krn:partner:global:account:test:M\(index)\", acquirer: ACQ1}\n"
        }
        let catalogueLine = catalogueFile.map { "catalogue_file: \"\($0)\"\n" } ?? ""
        let yaml = """
            # klarna-simulator configuration written by `klarna-simulator init`; paths are relative to this file.
            # Keys are documented in docs/simulator.md.
            listen: {host: 127.0.0.1, port: \(port)}
            control: {host: 127.0.0.1, port: \(controlPort)}
            tls:
              certificate_file: server.pem
              key_file: server.key
              client_ca_file: ca.pem
              ca_key_file: ca.key
              require_client_certificate: true
            acquirers:
              - id: ACQ1
                krn: "krn:partner:global:account:test:ACQ1"
                api_key_files: [acquirer-api-key]
            merchants:
            \(merchantLines)rate_limits:
              per_account: {default: 50, createPaymentRequest: 5, createPaymentRequestDirect: 5, createPaymentRequestV1: 5}
              per_acquirer: {default: 500}
            webhook_retry_scale: 1.0
            record_capacity: 100000
            \(catalogueLine)
            """
        let files: [(String, String, Int16)] = [
            ("ca.pem", ca.certificatePEM, 0o644), ("ca.key", caKeyPEM, 0o600),
            ("server.pem", server.certificatePEM, 0o644), ("server.key", server.privateKeyPEM, 0o600),
            ("acquirer.pem", acquirer.certificatePEM, 0o644), ("acquirer.key", acquirer.privateKeyPEM, 0o600),
            ("acquirer-api-key", apiKey, 0o600), ("simulator.yaml", yaml, 0o644),
        ]
        for (name, content, mode) in files {
            let url = base.appendingPathComponent(name)
            try? FileManager.default.removeItem(at: url)
            // Create with the final mode so a secret is never readable by others, even briefly.
            guard FileManager.default.createFile(atPath: url.path, contents: Data(content.utf8), attributes: [.posixPermissions: NSNumber(value: mode)]) else {
                throw SimulatorConfiguration.Invalid(reason: "cannot write \(url.path)")
            }
        }
        return Result(files: files.map(\.0), configurationPath: base.appendingPathComponent("simulator.yaml").path)
    }
}
