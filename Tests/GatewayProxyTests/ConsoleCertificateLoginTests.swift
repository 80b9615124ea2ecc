import Foundation
@testable import GatewayApp
import GatewayCore
import GatewayTestSupport
import Testing

/// Issue 18's login with a client certificate alone, in a real headless Chromium: the certificate is in the
/// browser's NSS database and a managed policy (written for the run by bin/console-browser-check, removed after)
/// presents it, since headless Chromium has no dialog to pick one with. A test of the serialized "Console in
/// Chromium" suite, so that its policy is never installed while another browser test runs.
extension ConsoleBrowserTests {
    /// Where Debian's chromium reads managed policies; writing there needs root, as bin/test and CI run.
    static let policyDirectory = "/etc/chromium/policies/managed"

    /// Whether this run may write a managed policy (the directory exists or can be made, and is writable).
    static var canWritePolicy: Bool {
        try? FileManager.default.createDirectory(atPath: policyDirectory, withIntermediateDirectories: true)
        return FileManager.default.isWritableFile(atPath: policyDirectory)
    }

    @Test(
        "a certificate-only viewer opens the console logged in as itself with no token typed or stored, reads merchants and logs out; its key is in no page or output",
        .enabled(
            if: (Self.browserInstalled && canWritePolicy) || Self.browserRequired,
            "needs chromium, chromium-driver, python3-selenium, libnss3-tools, openssl and root (a managed policy): bin/test installs them"))
    func certificateLogin() async throws {
        try #require(Self.browserInstalled, "KGW_REQUIRE_CHROMIUM is set but the browser or its tools are missing; bin/test installs them")
        try #require(Self.canWritePolicy, "KGW_REQUIRE_CHROMIUM is set but \(Self.policyDirectory) is not writable: run as root, as bin/test does")
        let admins = try TestPKI(name: "admin client CA")
        try await withAdminAPI(tls: true, clientCA: admins) { api in
            let authority = try #require(api.tlsAuthority)
            let identity = try admins.issueClient(commonName: "night viewer")
            _ = try await api.gw.admin.addCertificateAdmin(name: "night-viewer", role: .viewer, certificateFingerprint: identity.fingerprint)

            // This run's own policy file, removed here too in case the browser run is killed before it removes it.
            let policy = "\(Self.policyDirectory)/kgw-console-check-\(UUID().uuidString).json"
            defer { try? FileManager.default.removeItem(atPath: policy) }
            let out = Self.repository.appendingPathComponent(".build/console-screenshots/certificate")
            let run = try await ChildProcess.run(
                "/usr/bin/python3", [Self.repository.appendingPathComponent("bin/console-browser-check").path],
                environment: [
                    "KGW_CONSOLE_URL": "https://localhost:\(api.server.port)/console/", "KGW_CONSOLE_CA": authority.caCertificatePEM,
                    "KGW_CONSOLE_TOKEN": "", "KGW_CONSOLE_ROLE": "certificate", "KGW_CONSOLE_WIDTH": "1280", "KGW_CONSOLE_MERCHANT": "m1",
                    "KGW_CONSOLE_REQUEST_ID": "-", "KGW_CONSOLE_OUT": out.path, "KGW_CONSOLE_CERT_ADMIN": "night-viewer (viewer)",
                    "KGW_CONSOLE_CLIENT_CERT": identity.certificatePEM, "KGW_CONSOLE_CLIENT_KEY": identity.privateKeyPEM,
                    "KGW_CONSOLE_POLICY_FILE": policy,
                ], directory: FileManager.default.temporaryDirectory, timeout: .seconds(300))
            #expect(run.status == 0, "the certificate's browser run failed:\n\(run.stdout.suffix(6000))\n\(run.stderr.suffix(3000))")
            let dump = try String(contentsOf: out.appendingPathComponent("dump.txt"), encoding: .utf8)
            #expect(dump.contains("night-viewer (viewer)"), "the dump holds the pages as the certificate's admin saw them")
            #expect(!FileManager.default.fileExists(atPath: policy), "the browser run left its managed policy behind")
            let key = secretPart(ofPrivateKeyPEM: identity.privateKeyPEM)
            #expect(!(dump + run.stdout + run.stderr).contains(key), "the client certificate's private key in a page or the run's output")
            try await api.expectNoSecret(in: dump + run.stdout + run.stderr)
        }
    }
}
