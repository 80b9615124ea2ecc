import Foundation
@testable import GatewayApp
import Testing

/// deploy/systemd/klarna-gateway.service: a sandboxed service whose only writable path is its state directory,
/// stopped gracefully, reloaded with SIGHUP, run by the user the sysusers file creates.
@Suite("systemd unit")
struct SystemdUnitTests {
    static func unit() throws -> SystemdUnit { try SystemdUnit(text: DeployFiles.text("deploy/systemd/klarna-gateway.service")) }

    /// `90`, `90s`, `1min 30s`, `2min` in seconds (systemd.time(7), the units used here).
    static func seconds(_ text: String) -> Int? {
        var total = 0
        for part in text.split(separator: " ") {
            if let value = Int(part) { total += value } else if part.hasSuffix("min"), let value = Int(part.dropLast(3)) { total += value * 60 } else if part.hasSuffix("s"), let value = Int(part.dropLast()) { total += value } else { return nil }
        }
        return total
    }

    @Test("the unit parses into [Unit], [Service] and [Install], and the parser rejects what systemd would")
    func parses() throws {
        let unit = try Self.unit()
        #expect(Set(unit.sections.keys) == ["Unit", "Service", "Install"])
        #expect(unit.value("Install", "WantedBy") == "multi-user.target")
        #expect(throws: DeployFileError.self) { try SystemdUnit(text: "[Service]\nNoNewPrivileges yes\n") }
        #expect(throws: DeployFileError.self) { try SystemdUnit(text: "NoNewPrivileges=yes\n") }
        let continued = try SystemdUnit(text: "[Service]\nExecStart=/bin/a \\\n  # comment\n  --b\n")
        #expect(continued.value("Service", "ExecStart") == "/bin/a  --b")
    }

    @Test("sandboxing: no new privileges, strict system protection, no home, private /tmp, no capabilities")
    func sandbox() throws {
        let unit = try Self.unit()
        let expected = [
            "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
            "PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
            "ProtectControlGroups": "yes", "RestrictSUIDSGID": "yes", "LockPersonality": "yes",
            "RestrictNamespaces": "yes", "StateDirectory": "klarna-gateway", "UMask": "0077",
        ]
        for (key, value) in expected.sorted(by: { $0.key < $1.key }) {
            #expect(unit.value("Service", key) == value, "\(key)=\(unit.value("Service", key) ?? "<unset>"), expected \(value)")
        }
        // A listener below 1024 would need CAP_NET_BIND_SERVICE; the configured ones do not.
        let config = try DeployConfigs.imageConfig()
        let privileged = config.listeners.contains { $0.port < 1024 }
        let capabilities = privileged ? "CAP_NET_BIND_SERVICE" : ""
        #expect(unit.value("Service", "CapabilityBoundingSet") == capabilities)
        #expect(unit.value("Service", "AmbientCapabilities") ?? "" == capabilities)
        #expect(unit.value("Service", "RestrictAddressFamilies")?.split(separator: " ").sorted() == ["AF_INET", "AF_INET6", "AF_UNIX"])
        #expect(unit.values("Service", "SystemCallFilter").first == "@system-service")
    }

    @Test("only the state directory is writable, and every file the configuration writes is in it")
    func writablePaths() throws {
        let unit = try Self.unit()
        let stateDirectory = try #require(unit.value("Service", "StateDirectory"))
        let state = "/var/lib/" + stateDirectory
        #expect(unit.values("Service", "ReadWritePaths") == [state])
        #expect(unit.value("Service", "ProtectSystem") == "strict", "strict makes everything but ReadWritePaths read-only")
        let config = try DeployConfigs.imageConfig()
        for (key, path) in DeployConfigs.writePaths(config) {
            #expect(DeployConfigs.isInside(path, state), "\(key) = \(path) is outside \(state): the service could not write it")
        }
        // The master key ring is read from /etc, never written by the service (keys rotate runs as an admin command).
        let keyFile = try #require(config.masterKeyFilePath)
        #expect(!DeployConfigs.isInside(keyFile, state))
    }

    @Test("file limit fits the connection counts; run as a static non-root user the sysusers file creates")
    func limitsAndUser() throws {
        let unit = try Self.unit()
        let files = try #require(Int(unit.value("Service", "LimitNOFILE") ?? ""))
        // Tens of thousands of caller connections (the hostile-input issue opens 10,000 idle ones) plus upstream pools.
        #expect(files >= 65_536)
        let user = try #require(unit.value("Service", "User"))
        #expect(user != "root" && user != "0")
        #expect(unit.value("Service", "DynamicUser") == nil, "the admin CLI must be able to run as the same user")
        let sysusers = try DeployFiles.text("deploy/systemd/klarna-gateway.sysusers").components(separatedBy: "\n")
            .filter { !$0.hasPrefix("#") && !$0.isEmpty }
        #expect(sysusers.contains { $0.split(separator: " ").prefix(2) == ["u", Substring(user)] })
    }

    @Test("serve with the installed config, SIGHUP reload, SIGTERM stop with time to drain, restart on failure")
    func lifecycle() throws {
        let unit = try Self.unit()
        #expect(unit.value("Service", "ExecStart") == "/usr/local/bin/klarna-gateway serve --config \(DeployConfigs.imageConfigPath)")
        #expect(try DeployConfigs.imageFiles()[DeployConfigs.imageConfigPath] == "deploy/config/gateway.yaml", "the unit and the image share one layout")
        #expect(unit.value("Service", "ExecReload") == "/bin/kill -HUP $MAINPID")
        #expect(unit.value("Service", "Restart") == "on-failure")
        #expect(unit.value("Service", "KillSignal") == "SIGTERM")
        let stop = try #require(Self.seconds(unit.value("Service", "TimeoutStopSec") ?? ""))
        let config = try DeployConfigs.imageConfig()
        #expect(stop > config.upstream.responseTimeoutMs / 1000, "systemd would SIGKILL a gateway still finishing a call")
        #expect(Self.seconds("1min 30s") == 90 && Self.seconds("90s") == 90 && Self.seconds("soon") == nil)
        for assignment in unit.values("Service", "Environment") where assignment.hasPrefix(ConfigLoader.prefix) {
            Issue.record("Environment=\(assignment): check it against the configuration like the pod's variables")
        }
    }
}
