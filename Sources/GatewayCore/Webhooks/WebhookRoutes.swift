/// One route of `policies/webhooks.yaml`: events whose type matches one of `events` and whose merchant one of
/// `merchants` go to every one of `destinations`.
public struct WebhookRoute: Sendable, Equatable {
    /// Event type patterns: an exact type, a prefix ending in `.*` (`payment.*`), or `*`.
    public var events: [String]
    /// Merchant selectors: an id, `group:NAME`, `partner:ID`, or `*`.
    public var merchants: [String]
    /// Destination names.
    public var destinations: [String]
    /// The line of the file the route starts on, for error messages.
    public var line: Int

    /// Makes a route.
    public init(events: [String], merchants: [String], destinations: [String], line: Int = 0) {
        self.events = events
        self.merchants = merchants
        self.destinations = destinations
        self.line = line
    }

    /// Whether `pattern` matches `eventType`: `*` everything, `prefix.*` every type under `prefix.`, else equality.
    public static func matches(pattern: String, eventType: String) -> Bool {
        if pattern == "*" { return true }
        if pattern.hasSuffix(".*") { return eventType.hasPrefix(pattern.dropLast()) }
        return pattern == eventType
    }

    /// Whether a pattern is well formed: `*` only whole or as the last segment.
    public static func isValid(pattern: String) -> Bool {
        guard !pattern.isEmpty else { return false }
        let body = pattern == "*" ? "" : (pattern.hasSuffix(".*") ? String(pattern.dropLast(2)) : pattern)
        return pattern == "*" || (!body.isEmpty && !body.contains("*") && !body.hasPrefix(".") && !body.hasSuffix("."))
    }
}

/// Every route, in file order: the routing of events to destinations.
public struct WebhookRouteTable: Sendable, Equatable {
    /// The routes.
    public var routes: [WebhookRoute]

    /// No routes: every event of a known merchant is kept as `unrouted`.
    public static let empty = WebhookRouteTable(routes: [])

    /// Makes a table.
    public init(routes: [WebhookRoute]) { self.routes = routes }

    /// The destinations an event goes to, in the order routes name them, each once.
    public func destinations(eventType: String, merchant: MerchantRecord) -> [String] {
        var chosen: [String] = []
        for route in routes
        where route.events.contains(where: { WebhookRoute.matches(pattern: $0, eventType: eventType) })
            && MerchantSelector.any(route.merchants, covers: merchant)
        {
            for destination in route.destinations where !chosen.contains(destination) { chosen.append(destination) }
        }
        return chosen
    }

    /// Problems a human should fix, each naming its line: malformed patterns and selectors, empty lists, and
    /// destinations that do not exist (when `knownDestinations` is given).
    public func problems(knownDestinations: Set<String>?) -> [String] {
        var problems: [String] = []
        for route in routes {
            let at = "line \(route.line)"
            if route.events.isEmpty { problems.append("\(at): a route needs at least one event pattern") }
            for pattern in route.events where !WebhookRoute.isValid(pattern: pattern) {
                problems.append("\(at): event pattern '\(pattern)' must be an event type, 'prefix.*' or '*'")
            }
            if route.merchants.isEmpty { problems.append("\(at): a route needs at least one merchant selector ('*' for all)") }
            for selector in route.merchants where MerchantSelector.isEmpty(selector) {
                problems.append("\(at): empty merchant selector")
            }
            if route.destinations.isEmpty { problems.append("\(at): a route needs at least one destination") }
            if let knownDestinations {
                for destination in route.destinations where !knownDestinations.contains(destination) {
                    problems.append(
                        "\(at): no destination named '\(destination)' (add it with `klarna-gateway webhooks destinations add`)")
                }
            }
        }
        return problems
    }
}
