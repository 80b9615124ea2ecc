import Foundation
@testable import GatewayApp
import GatewayCore
import Testing

/// The gateway configurations the deploy files run with, loaded through the project's own ConfigLoader, and the
/// file systems they run in (the image's, the Kubernetes pod's), so tests can check that every path a
/// configuration names is actually provided.
enum DeployConfigs {
    /// Where the image and the systemd unit keep the configuration.
    static let imageConfigPath = "/etc/klarna-gateway/gateway.yaml"
    /// A pod name as the downward API would give it, standing in for `metadata.name`.
    static let samplePodName = "klarna-gateway-5d8f7c9b6d-x7k2p"

    /// The image's files: destination path to repository source, from the runtime stage's `COPY` lines that take
    /// files from the build context.
    static func imageFiles() throws -> [String: String] {
        let runtime = try #require(try DockerfileTests.dockerfile().runtime)
        var files: [String: String] = [:]
        for copy in runtime.all("COPY") where copy.flags["from"] == nil {
            let sources = copy.words.dropLast()
            let destination = copy.words.last!
            for source in sources {
                let path = destination.hasSuffix("/") || sources.count > 1
                    ? (destination.hasSuffix("/") ? destination : destination + "/") + URL(fileURLWithPath: source).lastPathComponent
                    : destination
                files[path] = source
            }
        }
        return files
    }

    /// Directories the runtime stage creates (`install -d` in a RUN), for mount points and the state volume.
    static func imageDirectories() throws -> Set<String> {
        let runtime = try #require(try DockerfileTests.dockerfile().runtime)
        var directories: Set<String> = []
        for run in runtime.all("RUN") {
            for command in run.arguments.components(separatedBy: "&&") where command.contains("install -d") {
                directories.formUnion(command.split(separator: " ").map(String.init).filter { $0.hasPrefix("/") })
            }
        }
        return directories
    }

    /// deploy/config/gateway.yaml as the image (and the systemd unit) sees it: relative paths resolved against
    /// /etc/klarna-gateway.
    static func imageConfig(environment: [String: String] = [:]) throws -> GatewayConfig {
        var config = try ConfigLoader.loadGateway(path: DeployFiles.path("deploy/config/gateway.yaml"), environment: environment)
        config.baseDirectory = URL(fileURLWithPath: imageConfigPath).deletingLastPathComponent().path
        return config
    }

    /// The ConfigMap's files laid out as the projected volume lays them out (item paths), in a fresh directory.
    static func configMapDirectory() throws -> URL {
        let configMap = try DeployFiles.kubernetesObject(kind: "ConfigMap", name: "klarna-gateway-config")
        let volume = try KubernetesTests.podSpec()["volumes"].named("config")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kgw-deploy-\(UUID().uuidString.prefix(8))")
        for source in volume["projected"]["sources"].array where source["configMap"].exists {
            for item in source["configMap"]["items"].array {
                let key = try #require(item["key"].string)
                let text = try #require(configMap["data"][key].string, "ConfigMap has no key \(key)")
                let file = directory.appendingPathComponent(try #require(item["path"].string))
                try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
                try text.write(to: file, atomically: true, encoding: .utf8)
            }
        }
        return directory
    }

    /// The gateway container's environment: literal values, the downward API's pod name, and Secret values taken
    /// from secret.example.yaml.
    static func podEnvironment() throws -> [String: String] {
        let container = try KubernetesTests.podSpec()["containers"].named("gateway")
        var environment: [String: String] = [:]
        for entry in container["env"].array {
            let name = try #require(entry["name"].string)
            if let value = entry["value"].string {
                environment[name] = value
            } else if entry["valueFrom"]["fieldRef"]["fieldPath"].string == "metadata.name" {
                environment[name] = samplePodName
            } else if let secret = entry["valueFrom"]["secretKeyRef"]["name"].string, let key = entry["valueFrom"]["secretKeyRef"]["key"].string {
                guard let value = try KubernetesTests.exampleSecret(secret)[key] else {
                    throw DeployFileError("secret.example.yaml has no \(secret)/\(key)")
                }
                environment[name] = value
            } else {
                Issue.record("env \(name) has a source this test does not know")
            }
        }
        return environment
    }

    /// The ConfigMap's gateway.yaml loaded with the pod's environment, as the pod sees it.
    static func podConfigOnly() throws -> GatewayConfig {
        let (config, directory) = try podConfig()
        try? FileManager.default.removeItem(at: directory)
        return config
    }

    /// The ConfigMap's gateway.yaml loaded with the pod's environment, as the pod sees it (base /etc/klarna-gateway),
    /// and the directory holding the ConfigMap's files (the caller removes it).
    static func podConfig() throws -> (config: GatewayConfig, directory: URL) {
        let directory = try configMapDirectory()
        var config: GatewayConfig
        do {
            config = try ConfigLoader.loadGateway(path: directory.appendingPathComponent("gateway.yaml").path, environment: podEnvironment())
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
        config.baseDirectory = URL(fileURLWithPath: imageConfigPath).deletingLastPathComponent().path
        return (config, directory)
    }

    /// The configuration encoded, so two loads can be compared field by field.
    static func encoded(_ config: GatewayConfig) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(config)
    }

    /// Files the gateway only reads, as absolute paths in the deployment's file system.
    static func readPaths(_ config: GatewayConfig) -> [String: String] {
        var paths = [
            "catalogue": config.resolve(config.catalogue),
            "policies.access": config.resolve(config.policies.access),
        ]
        if let path = config.policies.rateLimits { paths["policies.rate_limits"] = config.resolve(path) }
        if let path = config.policies.releases { paths["policies.releases"] = config.resolve(path) }
        if let path = config.masterKeyFilePath { paths["master_key.file"] = path }
        for (index, listener) in config.listeners.enumerated() {
            guard let tls = listener.tls else { continue }
            paths["listeners.\(index).tls.certificate"] = config.resolve(tls.certificate)
            paths["listeners.\(index).tls.private_key"] = config.resolve(tls.privateKey)
            if let ca = tls.clientCA { paths["listeners.\(index).tls.client_ca"] = config.resolve(ca) }
        }
        if let ca = config.upstream.caFile { paths["upstream.ca_file"] = config.resolve(ca) }
        // A PostgreSQL URL can name a file too: the CA that verifies the database server.
        if config.storage.contains("://"), let query = URLComponents(string: config.storage)?.queryItems,
           let rootCert = query.first(where: { $0.name == "sslrootcert" })?.value {
            paths["storage?sslrootcert"] = rootCert
        }
        return paths
    }

    /// Files the gateway writes (with their -wal and -shm companions beside them).
    static func writePaths(_ config: GatewayConfig) -> [String: String] {
        var paths: [String: String] = [:]
        if !config.audit.path.contains("://") { paths["audit.path"] = config.resolve(config.audit.path) }
        if let file = config.audit.checkpointFile { paths["audit.checkpoint_file"] = config.resolve(file) }
        if !config.storage.contains("://") { paths["storage"] = config.storagePath }
        return paths
    }

    /// Whether `path` lies inside `directory`.
    static func isInside(_ path: String, _ directory: String) -> Bool {
        let prefix = directory.hasSuffix("/") ? directory : directory + "/"
        return path.hasPrefix(prefix)
    }
}
