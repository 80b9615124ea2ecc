import Foundation
import GatewayApp
import GatewayCore
import Testing

/// The policy loader's text forms (what the policy fuzz target feeds): every malformed file is a `ConfigError`
/// naming its source, never a crash. Inputs here are the fuzz corpus's hostile seeds.
@Suite("Policy loader on hostile text")
struct PolicyTextTests {
    static let catalogue: OperationCatalogue = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return try! PolicyLoader.loadCatalogue(path: root.appendingPathComponent("config/catalogue/operations.tsv").path)
    }()

    @Test("malformed YAML, unknown families, alias loops and wrong types are ConfigErrors naming the file",
          arguments: ["callers: [1, 2\n", "&a [*a]", "callers:\n  a:\n    merchants: [\"*\"]\n    families: [nope]\n", "callers: 5", "\u{0}", ": : :", "callers:\n  a: {merchants: [\"*\"], families: [\"*\"], permissions: [root]}\n"])
    func refused(_ yaml: String) {
        for load in [
            { _ = try PolicyLoader.access(yaml: yaml, source: "hostile.yaml", catalogue: Self.catalogue) },
            { _ = try PolicyLoader.rateLimits(yaml: yaml, source: "hostile.yaml", catalogue: Self.catalogue) },
            { _ = try PolicyLoader.releases(yaml: yaml, source: "hostile.yaml", catalogue: Self.catalogue) },
        ] as [() throws -> Void] {
            do {
                try load()
            } catch let error as ConfigError {
                #expect(error.source == "hostile.yaml")
            } catch {
                Issue.record("not a ConfigError: \(error)")
            }
        }
    }
}
