import Foundation
import Testing

/// deploy/Dockerfile: a multi-stage build of a static release binary into a small, non-root, read-only-capable
/// runtime image with a health check. Docker cannot build here, so the instructions are checked instead.
@Suite("Container build file")
struct DockerfileTests {
    static func dockerfile() throws -> Dockerfile { try Dockerfile(text: DeployFiles.text("deploy/Dockerfile")) }

    @Test("two stages: a Swift 6 toolchain builds a static release binary, a slim Debian image runs it")
    func stages() throws {
        let file = try Self.dockerfile()
        #expect(file.stages.count >= 2)
        let build = try #require(file.stages.first)
        #expect(build.image.hasPrefix("swift:6."), "build stage image \(build.image)")
        let runs = build.all("RUN").map(\.arguments).joined(separator: "\n")
        for flag in ["swift build", "-c release", "--product klarna-gateway", "--static-swift-stdlib"] {
            #expect(runs.contains(flag), "the build stage's RUN lacks \(flag)")
        }
        let runtime = try #require(file.runtime)
        #expect(runtime.image == "debian:bookworm-slim")
        // The binary is linked against the build image's glibc: both stages must be the same Debian release.
        #expect(build.image.hasSuffix("-bookworm"))
        let binary = runtime.all("COPY").first { $0.flags["from"] == build.name && $0.words.last == "/usr/local/bin/klarna-gateway" }
        #expect(binary != nil, "the runtime stage does not copy the built binary from the build stage")
    }

    @Test("the runtime stage installs only libsqlite3-0, ca-certificates and tzdata, without recommends")
    func runtimePackages() throws {
        let runtime = try #require(try Self.dockerfile().runtime)
        let installs = runtime.all("RUN").map(\.arguments).filter { $0.contains("apt-get install") }
        #expect(installs.count == 1)
        let command = try #require(installs.first)
        #expect(command.contains("--no-install-recommends"))
        #expect(command.contains("rm -rf /var/lib/apt/lists/*"))
        let words = command.components(separatedBy: "apt-get install").last!.components(separatedBy: "&&").first!
            .split(separator: " ").map(String.init).filter { !$0.hasPrefix("-") && !$0.contains("=") }
        #expect(Set(words) == ["libsqlite3-0", "ca-certificates", "tzdata"])
    }

    @Test("runs as a numeric non-root user, with state in a volume and nothing secret copied in")
    func user() throws {
        let file = try Self.dockerfile()
        let runtime = try #require(file.runtime)
        let user = try #require(runtime.all("USER").last?.words.first)
        let ids = user.split(separator: ":").map(String.init)
        let uid = try #require(Int(ids[0]), "USER \(user) is not numeric (Kubernetes' runAsNonRoot needs a number)")
        #expect(uid >= 1000)
        if ids.count == 2 { #expect((Int(ids[1]) ?? 0) > 0) }
        // The USER line comes after every RUN: nothing runs as root after it, and the entrypoint runs as uid.
        let lastRun = try #require(runtime.instructions.lastIndex { $0.keyword == "RUN" })
        let userIndex = try #require(runtime.instructions.lastIndex { $0.keyword == "USER" })
        #expect(userIndex > lastRun)

        let volumes = runtime.all("VOLUME").flatMap(\.words)
        #expect(volumes == ["/var/lib/klarna-gateway"])

        #expect(file.stages.allSatisfy { $0.all("ADD").isEmpty }, "ADD fetches and unpacks; COPY only")
        let secretLike = [".key", ".keys", ".pem", ".demo", "master", "secret", ".sqlite", ".env"]
        for stage in file.stages {
            for copy in stage.all("COPY") where copy.flags["from"] == nil {
                for source in copy.words.dropLast() {
                    #expect(!secretLike.contains { source.lowercased().contains($0) }, "COPY \(source) looks like a secret or state")
                    #expect(source != "." && source != "./", "COPY . would bring local state (.demo, .build) into the image")
                }
            }
            for setting in stage.all("ENV") + stage.all("ARG") {
                let name = setting.arguments.uppercased()
                #expect(!["PASSWORD", "SECRET", "TOKEN", "MASTER_KEY", "API_KEY"].contains { name.contains($0) }, "\(setting.keyword) \(setting.arguments)")
            }
        }
        let ignore = try DeployFiles.text("deploy/Dockerfile.dockerignore").components(separatedBy: "\n")
        for entry in [".build", ".demo", ".git"] { #expect(ignore.contains(entry), "the build context keeps \(entry)") }
    }

    @Test("HEALTHCHECK asks the admin listener's /healthz; the TLS port is exposed; the entrypoint is serve --config")
    func healthAndEntrypoint() throws {
        let config = try DeployConfigs.imageConfig()
        let runtime = try #require(try Self.dockerfile().runtime)
        let health = try #require(runtime.all("HEALTHCHECK").last)
        let adminPort = String(try #require(config.admin?.port))
        #expect(health.words == ["CMD", "/usr/local/bin/klarna-gateway-probe", adminPort, "/healthz"])
        #expect(health.isExecForm)
        #expect(health.flags["timeout"] != nil && health.flags["interval"] != nil)

        let exposed = runtime.all("EXPOSE").flatMap(\.words).map { $0.split(separator: "/").first.map(String.init) ?? $0 }
        #expect(Set(exposed) == Set(config.listeners.map { String($0.port) }))
        // The admin listener binds to loopback only, so publishing its port would promise something unreachable.
        #expect(!exposed.contains(adminPort))

        let entrypoint = try #require(runtime.all("ENTRYPOINT").last)
        #expect(entrypoint.isExecForm, "shell form would put /bin/sh in front of the gateway and swallow SIGTERM")
        #expect(Array(entrypoint.words.prefix(4)) == ["/usr/local/bin/klarna-gateway", "serve", "--config", DeployConfigs.imageConfigPath])
        #expect(runtime.all("STOPSIGNAL").last?.words == ["SIGTERM"])
    }
}
