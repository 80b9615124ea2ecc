import Foundation
@testable import GatewayApp
import GatewayCore
import Testing

/// deploy/config/gateway.yaml, the image's and the systemd unit's configuration: it loads through the project's
/// ConfigLoader, its policies load, and every path it names exists in the image or on a mount point the image makes.
@Suite("Deploy configuration")
struct DeployConfigTests {
    @Test("the image's configuration and the policies it points to load through the project's loaders")
    func loads() throws {
        let config = try DeployConfigs.imageConfig()
        #expect(config.storage.hasPrefix("/var/lib/klarna-gateway/"), "the embedded default is a SQLite file in the state volume")
        #expect(config.auditEnabled)
        #expect(config.admin?.address == "127.0.0.1")
        // The default node id is the host name, which changes with every container; the audit chain needs it stable.
        let file = try #require(try DeployFiles.yamlDocuments("deploy/config/gateway.yaml").first)
        #expect(file["node_id"].string == config.nodeID)
        let files = try DeployConfigs.imageFiles()
        func source(_ path: String) throws -> String { DeployFiles.path(try #require(files[path], "the image has no \(path)")) }
        let catalogue = try PolicyLoader.loadCatalogue(path: source(config.resolve(config.catalogue)))
        #expect(!catalogue.operations.isEmpty)
        _ = try PolicyLoader.loadAccess(path: source(config.resolve(config.policies.access)), catalogue: catalogue)
        _ = try PolicyLoader.loadRateLimits(path: source(config.resolve(try #require(config.policies.rateLimits))), catalogue: catalogue)
        _ = try PolicyLoader.loadReleases(path: source(config.resolve(try #require(config.policies.releases))), catalogue: catalogue)
    }

    @Test("every path the image's configuration names is in the image or under a directory the image makes")
    func paths() throws {
        let config = try DeployConfigs.imageConfig()
        let files = try DeployConfigs.imageFiles()
        let directories = try DeployConfigs.imageDirectories()
        let runtime = try #require(try DockerfileTests.dockerfile().runtime)
        let volumes = runtime.all("VOLUME").flatMap(\.words)
        for (key, path) in DeployConfigs.readPaths(config) {
            let provided = files[path] != nil || directories.contains(URL(fileURLWithPath: path).deletingLastPathComponent().path)
            #expect(provided, "\(key) = \(path): no file and no mount point for it in the image")
        }
        for (key, path) in DeployConfigs.writePaths(config) {
            #expect(volumes.contains { DeployConfigs.isInside(path, $0) }, "\(key) = \(path) is outside the state volume: a read-only root would refuse it")
        }
        // Every file the image copies from the repository exists there.
        for source in Set(files.values) {
            #expect(FileManager.default.fileExists(atPath: DeployFiles.path(source)), "COPY \(source): no such file")
        }
        #expect(FileManager.default.isExecutableFile(atPath: DeployFiles.path("deploy/bin/klarna-gateway-probe")))
    }

    @Test("a postgres:// URL and a node id reach the image's configuration through KGW_ variables")
    func overrides() throws {
        let url = "postgres://klarna_gateway:REPLACE-WITH-PASSWORD@db.example.internal:5432/klarna_gateway?sslmode=verify-full"
        let config = try DeployConfigs.imageConfig(environment: ["KGW_STORAGE": url, "KGW_NODE_ID": "gw-2"])
        #expect(config.storage == url)
        #expect(config.nodeID == "gw-2")
        // With a URL the store is no longer a file the gateway writes.
        #expect(DeployConfigs.writePaths(config)["storage"] == nil)
    }
}
