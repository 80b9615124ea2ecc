import Foundation
import GatewayCore

/// What every fuzz target shares: the repository's real catalogue, and a way to state an invariant.
public enum FuzzSupport {
    /// The repository root, from this file's path (fuzz/Sources/FuzzSupport/…).
    public static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The operation catalogue the gateway ships.
    public static let catalogue: OperationCatalogue = {
        let path = repositoryRoot.appendingPathComponent("config/catalogue/operations.tsv").path
        guard let text = try? String(contentsOfFile: path, encoding: .utf8), let catalogue = try? OperationCatalogue(tsv: text) else {
            fatalError("cannot load the catalogue at \(path)")
        }
        return catalogue
    }()

    /// Stops the run with a finding when an invariant does not hold (libFuzzer saves the input).
    public static func require(_ condition: Bool, _ message: @autoclosure () -> String, input: [UInt8]) {
        guard !condition else { return }
        let shown = String(decoding: input.prefix(200), as: UTF8.self).debugDescription
        fatalError("invariant broken: \(message()) — input \(shown)")
    }
}
