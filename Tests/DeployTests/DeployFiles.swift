import Foundation
import Yams

/// The repository's deploy/ files, read and parsed the way the tools that consume them would see them.
enum DeployFiles {
    /// The repository root (this file is Tests/DeployTests/DeployFiles.swift).
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// A repository file's text.
    static func text(_ path: String) throws -> String {
        try String(contentsOf: repository.appendingPathComponent(path), encoding: .utf8)
    }

    /// A repository-relative path made absolute.
    static func path(_ path: String) -> String { repository.appendingPathComponent(path).path }

    /// Every YAML document of a file, multi-document files included (empty documents are skipped).
    static func yamlDocuments(_ path: String) throws -> [YAMLValue] {
        var sequence = try Yams.load_all(yaml: text(path))
        var documents: [YAMLValue] = []
        while let document = sequence.next() {
            if !(document is NSNull) { documents.append(YAMLValue(document)) }
        }
        // The sequence ends quietly at a parse error; without this check a broken second document would go unseen.
        if let error = sequence.error { throw DeployFileError("\(path) is not valid YAML: \(error)") }
        return documents
    }

    /// Every document of every manifest in deploy/kubernetes, keyed by file name.
    static func kubernetesDocuments() throws -> [(file: String, document: YAMLValue)] {
        let folder = repository.appendingPathComponent("deploy/kubernetes")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
        return try files.flatMap { file in try yamlDocuments("deploy/kubernetes/\(file)").map { (file: file, document: $0) } }
    }

    /// The one object of `kind` named `name` (or the only one of that kind) among the Kubernetes manifests.
    static func kubernetesObject(kind: String, name: String? = nil) throws -> YAMLValue {
        let matches = try kubernetesDocuments().map(\.document).filter {
            $0["kind"].string == kind && (name == nil || $0["metadata"]["name"].string == name)
        }
        guard matches.count == 1, let object = matches.first else {
            throw DeployFileError("expected one \(kind)\(name.map { " named \($0)" } ?? "") in deploy/kubernetes, found \(matches.count)")
        }
        return object
    }
}

/// A deploy file that does not have the shape a test expects.
struct DeployFileError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A parsed YAML value with forgiving navigation: a missing key or index yields `.missing` instead of crashing, so
/// a test reads `deployment["spec"]["replicas"].int` and compares with an expectation.
struct YAMLValue: CustomStringConvertible {
    let raw: Any?

    init(_ raw: Any?) { self.raw = raw }

    static var missing: YAMLValue { YAMLValue(nil) }

    /// Yams builds mappings as `[AnyHashable: Any]`; manifests only have string keys.
    private var mapping: [String: Any]? {
        guard let mapping = raw as? [AnyHashable: Any] else { return nil }
        return Dictionary(uniqueKeysWithValues: mapping.compactMap { key, value in (key.base as? String).map { ($0, value) } })
    }

    subscript(key: String) -> YAMLValue { YAMLValue(mapping?[key]) }

    subscript(index: Int) -> YAMLValue {
        guard let array = raw as? [Any], array.indices.contains(index) else { return .missing }
        return YAMLValue(array[index])
    }

    var string: String? { raw as? String }
    var int: Int? { raw as? Int }
    var bool: Bool? { raw as? Bool }
    var array: [YAMLValue] { (raw as? [Any])?.map(YAMLValue.init) ?? [] }
    var dictionary: [String: YAMLValue] { mapping?.mapValues(YAMLValue.init) ?? [:] }
    var strings: [String] { array.compactMap(\.string) }
    var exists: Bool { raw != nil }

    /// The first element of an array whose `name` is `name` (containers, volumes, ports, env entries).
    func named(_ name: String) -> YAMLValue { array.first { $0["name"].string == name } ?? .missing }

    var description: String { raw.map { "\($0)" } ?? "<missing>" }
}
