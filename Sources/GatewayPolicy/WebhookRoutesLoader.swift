import Foundation
import GatewayCore
import Yams

extension PolicyLoader {
    /// Loads and validates `webhooks.yaml`; `knownDestinations` (the store's) makes a route naming an unknown one an
    /// error, nil skips that check (`check` without a store).
    public static func loadWebhookRoutes(path: String, knownDestinations: Set<String>?) throws -> WebhookRouteTable {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(source: path, reason: "cannot read the file (\(error.localizedDescription))")
        }
        return try webhookRoutes(yaml: text, source: path, knownDestinations: knownDestinations)
    }

    /// Parses and validates webhook routes. Every problem names the line it is on, so an operator fixing a file of
    /// many routes goes straight to it.
    public static func webhookRoutes(yaml: String, source: String, knownDestinations: Set<String>?) throws -> WebhookRouteTable {
        let root: Node
        do {
            root = try Yams.compose(yaml: yaml) ?? Node.mapping(Node.Mapping([]))
        } catch {
            throw ConfigError(source: source, reason: "not valid YAML: \(error)")
        }
        func line(_ node: Node) -> Int { (node.mark?.line ?? 0) }
        guard let mapping = root.mapping else { throw ConfigError(source: source, reason: "line \(line(root)): expected a mapping with 'routes'") }
        for key in mapping.keys where key.string != "routes" {
            throw ConfigError(source: source, reason: "line \(line(key)): unknown key '\(key.string ?? "?")' (expected 'routes')")
        }
        guard let list = mapping["routes"] else { return .empty }
        if case .scalar(let scalar) = list, scalar.string.isEmpty || scalar.string == "null" || scalar.string == "~" { return .empty }
        guard let sequence = list.sequence else { throw ConfigError(source: source, reason: "line \(line(list)): 'routes' must be a list") }
        var routes: [WebhookRoute] = []
        var problems: [String] = []
        for item in sequence {
            guard let fields = item.mapping else {
                problems.append("line \(line(item)): a route is a mapping with events, merchants and destinations")
                continue
            }
            var route = WebhookRoute(events: [], merchants: [], destinations: [], line: line(item))
            for (key, value) in fields {
                let strings: [String]?
                if let scalar = value.scalar { strings = [scalar.string] } else { strings = value.sequence?.map { $0.string ?? "" } }
                guard let strings else {
                    problems.append("line \(line(value)): '\(key.string ?? "?")' must be a string or a list of strings")
                    continue
                }
                switch key.string {
                case "events": route.events = strings
                case "merchants": route.merchants = strings
                case "destinations": route.destinations = strings
                default: problems.append("line \(line(key)): unknown key '\(key.string ?? "?")' (expected events, merchants, destinations)")
                }
            }
            routes.append(route)
        }
        let table = WebhookRouteTable(routes: routes)
        problems += table.problems(knownDestinations: knownDestinations)
        guard problems.isEmpty else { throw ConfigError(source: source, reason: problems.joined(separator: "; ")) }
        return table
    }
}
