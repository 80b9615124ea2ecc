import Foundation
@testable import GatewayApp
import GatewayCore
import GatewayVault
import Testing

/// deploy/kubernetes: three hardened replicas with probes, configuration from a ConfigMap, secrets from Secrets,
/// a PodDisruptionBudget and a Service, checked against each other and against the gateway's configuration.
@Suite("Kubernetes manifests")
struct KubernetesTests {
    static func deployment() throws -> YAMLValue { try DeployFiles.kubernetesObject(kind: "Deployment", name: "klarna-gateway") }
    static func podSpec() throws -> YAMLValue { try deployment()["spec"]["template"]["spec"] }

    /// A Secret of secret.example.yaml as key to value.
    static func exampleSecret(_ name: String) throws -> [String: String] {
        let secrets = try DeployFiles.yamlDocuments("deploy/kubernetes/secret.example.yaml").filter { $0["kind"].string == "Secret" }
        let secret = try #require(secrets.first { $0["metadata"]["name"].string == name }, "secret.example.yaml has no Secret \(name)")
        return secret["stringData"].dictionary.compactMapValues(\.string)
    }

    @Test("every manifest parses, names a kind, and the kustomization applies all of them but the Secret example")
    func manifests() throws {
        let documents = try DeployFiles.kubernetesDocuments()
        #expect(documents.allSatisfy { $0.document["kind"].string != nil && $0.document["apiVersion"].string != nil })
        let kinds = documents.compactMap { $0.document["kind"].string }
        for kind in ["Deployment", "Service", "PodDisruptionBudget", "ConfigMap", "Secret", "ServiceAccount", "Kustomization"] {
            #expect(kinds.contains(kind), "no \(kind) in deploy/kubernetes")
        }
        let kustomization = try DeployFiles.kubernetesObject(kind: "Kustomization")
        let listed = Set(kustomization["resources"].strings)
        let files = Set(documents.map { $0.file }).subtracting(["kustomization.yaml"])
        #expect(listed == files.subtracting(["secret.example.yaml"]))
        #expect(!listed.contains("secret.example.yaml"), "applying the kustomization would overwrite real Secrets with placeholders")
        let pod = try Self.podSpec()
        let images = (pod["containers"].array + pod["initContainers"].array).compactMap(\.["image"].string)
        #expect(Set(images).count == 1, "the init container and the gateway run different images: \(images)")
        let imageNames = Set(images.compactMap { $0.split(separator: ":").first.map(String.init) })
        #expect(imageNames == Set(kustomization["images"].array.compactMap(\.["name"].string)))
    }

    @Test("a Deployment of 3 whose selector, Service and PodDisruptionBudget (minAvailable 2) agree")
    func replicasAndSelectors() throws {
        let deployment = try Self.deployment()
        #expect(deployment["spec"]["replicas"].int == 3)
        #expect(deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"].int == 0)
        let podLabels = deployment["spec"]["template"]["metadata"]["labels"].dictionary.compactMapValues(\.string)
        func selects(_ selector: [String: String]) -> Bool {
            !selector.isEmpty && selector.allSatisfy { podLabels[$0.key] == $0.value }
        }
        #expect(selects(deployment["spec"]["selector"]["matchLabels"].dictionary.compactMapValues(\.string)))

        let budget = try DeployFiles.kubernetesObject(kind: "PodDisruptionBudget")
        #expect(budget["apiVersion"].string == "policy/v1")
        #expect(budget["spec"]["minAvailable"].int == 2)
        #expect(selects(budget["spec"]["selector"]["matchLabels"].dictionary.compactMapValues(\.string)))

        let service = try DeployFiles.kubernetesObject(kind: "Service")
        #expect(selects(service["spec"]["selector"].dictionary.compactMapValues(\.string)))
        let config = try DeployConfigs.podConfigOnly()
        let container = try Self.podSpec()["containers"].named("gateway")
        for port in service["spec"]["ports"].array {
            let target = try #require(port["targetPort"].string)
            let containerPort = try #require(container["ports"].named(target)["containerPort"].int, "no container port named \(target)")
            #expect(config.listeners.map(\.port).contains(containerPort), "Service port \(target) is not a gateway listener")
        }
        #expect(Set(container["ports"].array.compactMap(\.["containerPort"].int)) == Set(config.listeners.map(\.port)))
    }

    @Test("non-root, read-only root file system, all capabilities dropped, seccomp RuntimeDefault, for every container")
    func securityContext() throws {
        let pod = try Self.podSpec()
        #expect(pod["securityContext"]["runAsNonRoot"].bool == true)
        #expect((pod["securityContext"]["runAsUser"].int ?? 0) > 0)
        #expect(pod["securityContext"]["seccompProfile"]["type"].string == "RuntimeDefault")
        #expect(pod["automountServiceAccountToken"].bool == false)
        // The same uid as the image's USER, so files the init container writes belong to the gateway.
        let imageUser = try #require(try DockerfileTests.dockerfile().runtime?.all("USER").last?.words.first)
        #expect(imageUser.split(separator: ":").first.map(String.init) == pod["securityContext"]["runAsUser"].int.map(String.init))
        let containers = pod["containers"].array + pod["initContainers"].array
        #expect(containers.count == 2)
        for container in containers {
            let name = container["name"].string ?? "?"
            let context = container["securityContext"]
            #expect(context["readOnlyRootFilesystem"].bool == true, "\(name)")
            #expect(context["allowPrivilegeEscalation"].bool == false, "\(name)")
            #expect(context["runAsNonRoot"].bool == true, "\(name)")
            #expect(context["capabilities"]["drop"].strings == ["ALL"], "\(name)")
            #expect(!context["capabilities"]["add"].exists, "\(name)")
            #expect(context["privileged"].bool != true, "\(name)")
            #expect(context["seccompProfile"]["type"].string == "RuntimeDefault", "\(name)")
            #expect(container["resources"]["requests"].exists && container["resources"]["limits"]["memory"].exists, "\(name)")
        }
    }

    @Test("liveness on /healthz, readiness on /readyz, both on the admin port through the probe the image ships")
    func probes() throws {
        let config = try DeployConfigs.podConfigOnly()
        let port = String(try #require(config.admin?.port))
        let container = try Self.podSpec()["containers"].named("gateway")
        let probe = "/usr/local/bin/klarna-gateway-probe"
        #expect(try DeployConfigs.imageFiles()[probe] == "deploy/bin/klarna-gateway-probe")
        #expect(container["livenessProbe"]["exec"]["command"].strings == [probe, port, "/healthz"])
        #expect(container["readinessProbe"]["exec"]["command"].strings == [probe, port, "/readyz"])
        #expect(container["startupProbe"]["exec"]["command"].strings == [probe, port, "/healthz"])
        // httpGet would connect to the pod IP, where the loopback-only admin listener does not answer.
        for kind in ["livenessProbe", "readinessProbe", "startupProbe"] { #expect(!container[kind]["httpGet"].exists) }

        let grace = try #require(try Self.podSpec()["terminationGracePeriodSeconds"].int)
        let preStop = container["lifecycle"]["preStop"]["exec"]["command"].strings
        let pause = preStop.first == "sleep" ? Int(preStop.last ?? "") ?? 0 : 0
        #expect(grace > pause + config.upstream.responseTimeoutMs / 1000, "a call in flight at SIGTERM could be cut off")
    }

    @Test("the master key ring comes from a Secret as a 0400 file owned by the gateway's user")
    func masterKey() throws {
        let config = try DeployConfigs.podConfigOnly()
        let keyFile = try #require(config.masterKeyFilePath)
        #expect(config.masterKey.environment == nil)
        let pod = try Self.podSpec()
        let copy = try #require(pod["initContainers"].array.first { $0["command"].strings.first == "install" })
        #expect(copy["command"].strings.prefix(3) == ["install", "-m", "0400"])
        #expect(copy["command"].strings.last == keyFile)
        let source = try #require(copy["command"].strings.dropLast().last)
        let secretMount = try #require(copy["volumeMounts"].array.first { DeployConfigs.isInside(source, $0["mountPath"].string ?? "") })
        let secretVolume = pod["volumes"].named(try #require(secretMount["name"].string))
        let secretName = try #require(secretVolume["secret"]["secretName"].string)
        let itemPath = String(source.dropFirst((secretMount["mountPath"].string ?? "").count + 1))
        let key = try #require(secretVolume["secret"]["items"].array.first { $0["path"].string == itemPath }?["key"].string)
        #expect(try Self.exampleSecret(secretName)[key] != nil)

        let keyDirectory = URL(fileURLWithPath: keyFile).deletingLastPathComponent().path
        let gateway = pod["containers"].named("gateway")
        let keyMount = try #require(gateway["volumeMounts"].array.first { $0["mountPath"].string == keyDirectory })
        #expect(keyMount["readOnly"].bool == true)
        let initKeyMount = try #require(copy["volumeMounts"].array.first { $0["mountPath"].string == keyDirectory })
        #expect(initKeyMount["name"].string == keyMount["name"].string)
        let keyVolume = pod["volumes"].named(try #require(keyMount["name"].string))
        #expect(keyVolume["emptyDir"]["medium"].string == "Memory", "the key ring would be written to the node's disk")
        // The Secret itself is never mounted into the gateway: it would appear there group-readable (0440).
        #expect(!gateway["volumeMounts"].array.contains { $0["name"].string == secretMount["name"].string })
    }

    @Test("configuration and policies come from the ConfigMap at the path the image's entrypoint names")
    func configuration() throws {
        let gateway = try Self.podSpec()["containers"].named("gateway")
        #expect(!gateway["command"].exists && !gateway["args"].exists, "the image's entrypoint (serve --config) is used")
        let configDirectory = URL(fileURLWithPath: DeployConfigs.imageConfigPath).deletingLastPathComponent().path
        let mount = try #require(gateway["volumeMounts"].array.first { $0["mountPath"].string == configDirectory })
        #expect(mount["readOnly"].bool == true)
        #expect(!mount["subPath"].exists, "a subPath mount never sees ConfigMap updates")
        let volume = try Self.podSpec()["volumes"].named(try #require(mount["name"].string))
        let configMaps = volume["projected"]["sources"].array.filter { $0["configMap"].exists }
        #expect(configMaps.first?["configMap"]["name"].string == "klarna-gateway-config")
        #expect(configMaps.first?["configMap"]["items"].array.contains { $0["path"].string == "gateway.yaml" } == true)
    }

    @Test("the ConfigMap's gateway.yaml loads with the pod's environment, and its policies load against the catalogue")
    func configMapLoads() throws {
        let (config, directory) = try DeployConfigs.podConfig()
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(config.nodeID == DeployConfigs.samplePodName, "KGW_NODE_ID does not reach node_id")
        let url = try #require(try DeployConfigs.podEnvironment()["KGW_STORAGE"])
        #expect(config.storage == url)
        #expect(url.hasPrefix("postgres://") && url.contains("sslmode=verify-full"))
        #expect(config.auditEnabled)
        #expect(config.audit.path == url, "each pod's audit chain must be kept in PostgreSQL, not in the pod's emptyDir")
        #expect(config.admin?.address == "127.0.0.1")

        let catalogueSource = try #require(try DeployConfigs.imageFiles()[config.resolve(config.catalogue)], "the image does not carry \(config.catalogue)")
        let catalogue = try PolicyLoader.loadCatalogue(path: DeployFiles.path(catalogueSource))
        #expect(!catalogue.operations.isEmpty)
        let inVolume = { (path: String) in directory.appendingPathComponent(String(path.dropFirst("/etc/klarna-gateway/".count))).path }
        let access = try PolicyLoader.loadAccess(path: inVolume(config.resolve(config.policies.access)), catalogue: catalogue)
        #expect(!access.callers.isEmpty)
        _ = try PolicyLoader.loadRateLimits(path: inVolume(config.resolve(try #require(config.policies.rateLimits))), catalogue: catalogue)
        _ = try PolicyLoader.loadReleases(path: inVolume(config.resolve(try #require(config.policies.releases))), catalogue: catalogue)
    }

    @Test("every file the pod's configuration reads is mounted or in the image, and every file it writes is on a writable volume")
    func pathsAreProvided() throws {
        let (config, directory) = try DeployConfigs.podConfig()
        defer { try? FileManager.default.removeItem(at: directory) }
        let pod = try Self.podSpec()
        let mounts = pod["containers"].named("gateway")["volumeMounts"].array
        let imageFiles = try DeployConfigs.imageFiles()

        /// What provides `path` inside the gateway container: a volume (and whether it is writable) or the image.
        func provider(_ path: String) -> (source: String, writable: Bool)? {
            let mount = mounts.filter { DeployConfigs.isInside(path, $0["mountPath"].string ?? "") }
                .max { ($0["mountPath"].string ?? "").count < ($1["mountPath"].string ?? "").count }
            guard let mount, let mountPath = mount["mountPath"].string, let name = mount["name"].string else {
                return imageFiles[path].map { (source: "image \($0)", writable: false) }
            }
            let volume = pod["volumes"].named(name)
            let relative = String(path.dropFirst(mountPath.count + 1))
            if volume["emptyDir"].exists { return (source: "emptyDir \(name)", writable: mount["readOnly"].bool != true) }
            let items = volume["projected"]["sources"].array.flatMap { $0["configMap"]["items"].array + $0["secret"]["items"].array }
                + volume["secret"]["items"].array + volume["configMap"]["items"].array
            return items.contains { $0["path"].string == relative } ? (source: "volume \(name)", writable: false) : nil
        }

        for (key, path) in DeployConfigs.readPaths(config) {
            #expect(provider(path) != nil, "\(key) = \(path) is neither mounted nor in the image")
        }
        for (key, path) in DeployConfigs.writePaths(config) {
            #expect(provider(path)?.writable == true, "\(key) = \(path) is not on a writable volume")
        }
        #expect(provider(DeployConfigs.imageConfigPath) != nil)
        #expect(mounts.contains { $0["mountPath"].string == "/tmp" && $0["readOnly"].bool != true })
    }

    @Test("every KGW_ variable of the pod sets a key the configuration has")
    func environmentOverrides() throws {
        let directory = try DeployConfigs.configMapDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("gateway.yaml").path
        let plain = try DeployConfigs.encoded(ConfigLoader.loadGateway(path: path, environment: [:]))
        let environment = try DeployConfigs.podEnvironment()
        #expect(!environment.isEmpty)
        for (name, value) in environment where name.hasPrefix(ConfigLoader.prefix) {
            let overridden = try DeployConfigs.encoded(ConfigLoader.loadGateway(path: path, environment: [name: value]))
            #expect(overridden != plain, "\(name) names no configuration key: the gateway would ignore it")
        }
        // The check can fail: a variable for a key that does not exist leaves the configuration unchanged. (This is
        // also why the pod sets KGW_NODE_ID: node_id is a top-level key, there is no audit.node_id.)
        let ignored = try DeployConfigs.encoded(ConfigLoader.loadGateway(path: path, environment: ["KGW_AUDIT__NODE_ID": "x"]))
        #expect(ignored == plain)
    }

    @Test("resources are set from the measured figures, which the manifest states")
    func resources() throws {
        let resources = try Self.podSpec()["containers"].named("gateway")["resources"]
        func mebibytes(_ value: YAMLValue) -> Int? {
            guard let text = value.string, text.hasSuffix("Mi") else { return nil }
            return Int(text.dropLast(2))
        }
        let request = try #require(mebibytes(resources["requests"]["memory"]))
        let limit = try #require(mebibytes(resources["limits"]["memory"]))
        // Measured: 106 MiB idle, 120 MiB under load with 100,000 merchants.
        #expect(request >= 120 && limit > request)
        #expect(resources["requests"]["cpu"].string != nil && resources["limits"]["cpu"].string != nil)
        let text = try DeployFiles.text("deploy/kubernetes/deployment.yaml")
        for figure in ["106 MiB", "120 MiB", "100,000 merchants", "4.7k", "2.8-3.2k"] {
            #expect(text.contains(figure), "deployment.yaml does not state \(figure)")
        }
    }

    @Test("every Secret the pod reads is in secret.example.yaml with that key, and every value there is a placeholder")
    func secrets() throws {
        let pod = try Self.podSpec()
        var references: [(secret: String, key: String)] = []
        for container in pod["containers"].array + pod["initContainers"].array {
            for entry in container["env"].array {
                if let name = entry["valueFrom"]["secretKeyRef"]["name"].string, let key = entry["valueFrom"]["secretKeyRef"]["key"].string {
                    references.append((name, key))
                }
            }
        }
        for volume in pod["volumes"].array {
            let sources = [volume["secret"]] + volume["projected"]["sources"].array.map(\.["secret"])
            for source in sources where source.exists {
                let name = try #require(source["secretName"].string ?? source["name"].string)
                let items = source["items"].array
                #expect(!items.isEmpty, "Secret \(name) is mounted whole; name the keys so a missing one fails the pod")
                references += items.compactMap(\.["key"].string).map { (secret: name, key: $0) }
            }
        }
        #expect(Set(references.map { $0.secret }) == ["klarna-gateway-master-key", "klarna-gateway-tls", "klarna-gateway-postgres"])
        for reference in references {
            #expect(try Self.exampleSecret(reference.secret)[reference.key] != nil, "secret.example.yaml lacks \(reference.secret)/\(reference.key)")
        }

        let documents = try DeployFiles.yamlDocuments("deploy/kubernetes/secret.example.yaml")
        for secret in documents {
            #expect(!secret["data"].exists, "base64 data hides what a value is; use stringData placeholders")
            for (key, value) in secret["stringData"].dictionary {
                let text = try #require(value.string)
                #expect(text.contains("REPLACE-WITH"), "\(key) is not a placeholder")
                #expect(!text.contains("-----BEGIN") && !text.contains("klarna_test_api_") && !text.contains("klarna_live_api_") && !text.contains("kgw_"))
            }
        }
        // The placeholder key ring cannot be used by mistake, while a real ring in the same place would parse.
        let placeholder = try #require(try Self.exampleSecret("klarna-gateway-master-key")["master.keys"])
        #expect(throws: (any Error).self) { try MasterKeyRing(parsing: placeholder, source: "secret.example.yaml") }
        #expect(throws: Never.self) { try MasterKeyRing(parsing: MasterKeyRing.generate().rendered.exposedValue, source: "generated") }
    }
}
