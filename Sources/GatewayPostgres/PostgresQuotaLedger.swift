import Foundation
import GatewayCore
import Logging
import PostgresNIO

/// The shared ledger of limits across gateway instances, in PostgreSQL: `QuotaLedger.grant` and `giveBack` run as
/// server-side functions, atomically per key (one row lock) and on the server's clock, so instances need no
/// synchronized clocks: answers come back as a wait in nanoseconds, which the instance adds to its own monotonic
/// clock. Instances also record heartbeats here, which count the instances seen recently for the fallback share.
///
/// The ledger has a small pool of its own, so that a lease never queues behind reloads or admin writes on the
/// store's pool, and a short connect timeout, so that an unreachable server is noticed within the ledger
/// client's timeout rather than the store's.
public final class PostgresQuotaLedger: QuotaLedgerBackend {
    /// Where the ledger is, password hidden.
    public let url: PostgresURL
    let client: PostgresClient
    let logger: Logger
    private let runner: Task<Void, Never>

    /// Opens a pool (connecting on first use) to the store at `url`, whose schema must be at version 4 or later.
    public init(
        url: PostgresURL, connectTimeout: Duration = .seconds(1), maximumConnections: Int = 4,
        logger: Logger = Logger(label: "klarna-gateway.quota", factory: { _ in SwiftLogNoOpLogHandler() })
    ) throws {
        self.url = url
        self.logger = logger
        var configuration = try url.clientConfiguration()
        configuration.options.maximumConnections = maximumConnections
        configuration.options.connectTimeout = connectTimeout
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        runner = Task { await client.run() }
    }

    /// Closes the pool; the ledger cannot be used afterwards.
    public func close() {
        runner.cancel()
    }

    deinit {
        runner.cancel()
    }

    /// Grants up to `requested` admissions of `key` under `gcra` on the server's clock.
    public func grant(_ key: RateLimitKey, _ gcra: GCRA, requested: Int) async throws -> QuotaGrant {
        try await grant(key, gcra, requested: requested, now: nil)
    }

    /// Grants with an explicit server-side `now` (nil: the server's clock), so tests can check the SQL against
    /// `QuotaLedger.grant` input for input.
    public func grant(_ key: RateLimitKey, _ gcra: GCRA, requested: Int, now: Int64?) async throws -> QuotaGrant {
        try await run {
            let rows = try await client.query(
                """
                SELECT granted, wait_ns FROM kgw_quota_grant(\(key.rule.rawValue), \(key.first), \(key.second), \
                \(gcra.interval), \(Int64(gcra.burst)), \(Int64(requested)), \(now))
                """, logger: logger)
            // Every row is read, never left early: the pool takes the connection back when its rows end.
            var answer: QuotaGrant?
            for try await (granted, wait) in rows.decode((Int64, Int64).self) { answer = QuotaGrant(granted: Int(granted), wait: wait) }
            guard let answer else { throw StoreError("kgw_quota_grant returned no row") }
            return answer
        }
    }

    /// Gives `unused` admissions of `key` back on the server's clock.
    public func giveBack(_ key: RateLimitKey, _ gcra: GCRA, unused: Int) async throws {
        try await giveBack(key, gcra, unused: unused, now: nil)
    }

    /// Gives back with an explicit server-side `now` (nil: the server's clock).
    public func giveBack(_ key: RateLimitKey, _ gcra: GCRA, unused: Int, now: Int64?) async throws {
        try await run {
            _ = try await client.query(
                """
                SELECT kgw_quota_give_back(\(key.rule.rawValue), \(key.first), \(key.second), \(gcra.interval), \
                \(Int64(unused)), \(now))
                """, logger: logger)
        }
    }

    /// The keys' TATs and the server's clock in one query: one row per key asked, its TAT null when the ledger has
    /// no row for it.
    public func reading(_ keys: [RateLimitKey]) async throws -> QuotaLedgerReading {
        try await run {
            let rows = try await client.query(
                """
                SELECT kgw_now_ns(), k.rule_name, k.key_first, k.key_second, l.tat_ns
                FROM unnest(\(keys.map(\.rule.rawValue))::text[], \(keys.map(\.first))::text[], \(keys.map(\.second))::text[])
                    AS k(rule_name, key_first, key_second)
                LEFT JOIN quota_ledger l USING (rule_name, key_first, key_second)
                UNION ALL SELECT kgw_now_ns(), NULL, NULL, NULL, NULL
                """, logger: logger)
            var reading = QuotaLedgerReading(now: 0, tats: [:])
            for try await (now, rule, first, second, tat) in rows.decode((Int64, String?, String?, String?, Int64?).self) {
                reading.now = max(reading.now, now)
                guard let rule = rule.flatMap(RateLimitRule.init(rawValue:)), let first, let second, let tat else { continue }
                reading.tats[RateLimitKey(rule: rule, first: first, second: second)] = tat
            }
            return reading
        }
    }

    /// Records `node` as alive and counts the instances seen within `window` nanoseconds.
    public func heartbeat(node: String, window: Int64) async throws -> Int {
        try await run {
            let rows = try await client.query("SELECT kgw_instance_heartbeat(\(node), \(window))", logger: logger)
            var count: Int?
            for try await value in rows.decode(Int64.self) { count = Int(value) }
            guard let count else { throw StoreError("kgw_instance_heartbeat returned no row") }
            return count
        }
    }

    /// Deletes keys whose TAT has passed (the same as a key never used) and instances not seen for a day.
    public func sweep() async throws {
        try await run {
            try await client.query("DELETE FROM quota_ledger WHERE tat_ns < kgw_now_ns()", logger: logger)
            try await client.query(
                "DELETE FROM gateway_instances WHERE seen_ns < kgw_now_ns() - \(Int64(86_400) * 1_000_000_000)", logger: logger)
        }
    }

    /// The ledger row of `key`: its TAT in server nanoseconds, nil when the key has none.
    public func tat(_ key: RateLimitKey) async throws -> Int64? {
        try await reading([key]).tats[key]
    }

    /// The server's clock, nanoseconds since 1970 (microsecond resolution).
    public func serverNow() async throws -> Int64 {
        try await run {
            var now: Int64?
            for try await value in try await client.query("SELECT kgw_now_ns()", logger: logger).decode(Int64.self) { now = value }
            guard let now else { throw StoreError("kgw_now_ns returned no row") }
            return now
        }
    }

    private func run<Result: Sendable>(_ body: () async throws -> Result) async throws -> Result {
        do {
            return try await body()
        } catch {
            throw PostgresStore.storeError(error, url: url)
        }
    }
}

extension PostgresStore {
    /// Schema step 4: the ledger (one GCRA TAT per limit key, in server nanoseconds), the instances' heartbeats,
    /// and the functions that run `QuotaLedger.grant`/`giveBack` atomically per key.
    ///
    /// A ledger write is committed without waiting for its WAL flush (`synchronous_commit` off for that
    /// transaction only): a server crash may forget the last few milliseconds of leases, so a handful of
    /// admissions could be granted twice once; a disk flush per lease is not worth that.
    static let quotaLeasingSchema: [String] = [
        """
        CREATE TABLE quota_ledger (
            rule_name TEXT NOT NULL,
            key_first TEXT NOT NULL,
            key_second TEXT NOT NULL,
            tat_ns BIGINT NOT NULL,
            PRIMARY KEY (rule_name, key_first, key_second)
        )
        """,
        "CREATE TABLE gateway_instances (node_id TEXT PRIMARY KEY, seen_ns BIGINT NOT NULL)",
        """
        CREATE FUNCTION kgw_now_ns() RETURNS BIGINT LANGUAGE sql VOLATILE AS $$
            SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::BIGINT * 1000
        $$
        """,
        // Exactly QuotaLedger.grant (Sources/GatewayCore/RateLimit/QuotaLease.swift); a test runs random inputs
        // through both. A missing row and a TAT in the past mean the same: a full burst.
        """
        CREATE FUNCTION kgw_quota_grant(
            p_rule TEXT, p_first TEXT, p_second TEXT, p_interval BIGINT, p_burst BIGINT, p_requested BIGINT,
            p_now BIGINT DEFAULT NULL
        ) RETURNS TABLE (granted BIGINT, wait_ns BIGINT) LANGUAGE plpgsql AS $$
        DECLARE
            v_now BIGINT := COALESCE(p_now, kgw_now_ns());
            v_tolerance BIGINT := p_interval * (p_burst - 1);
            v_tat BIGINT;
            v_slack BIGINT;
            v_granted BIGINT;
        BEGIN
            PERFORM set_config('synchronous_commit', 'off', true);
            -- Creates the key at now, or locks its row: instances asking at once take turns on it.
            INSERT INTO quota_ledger AS l (rule_name, key_first, key_second, tat_ns)
                VALUES (p_rule, p_first, p_second, v_now)
                ON CONFLICT (rule_name, key_first, key_second) DO UPDATE SET tat_ns = l.tat_ns
                RETURNING l.tat_ns INTO v_tat;
            v_tat := GREATEST(v_tat, v_now);
            v_slack := v_now + v_tolerance - v_tat;
            v_granted := CASE WHEN v_slack < 0 THEN 0 ELSE v_slack / p_interval + 1 END;
            v_granted := LEAST(GREATEST(p_requested, 0), v_granted);
            IF v_granted = 0 THEN
                granted := 0;
                wait_ns := GREATEST(0, v_tat - v_tolerance - v_now);
            ELSE
                UPDATE quota_ledger SET tat_ns = v_tat + v_granted * p_interval
                    WHERE rule_name = p_rule AND key_first = p_first AND key_second = p_second;
                granted := v_granted;
                wait_ns := 0;
            END IF;
            RETURN NEXT;
        END
        $$
        """,
        // Exactly QuotaLedger.giveBack: the TAT moves back by the unused admissions, never before now.
        """
        CREATE FUNCTION kgw_quota_give_back(
            p_rule TEXT, p_first TEXT, p_second TEXT, p_interval BIGINT, p_unused BIGINT, p_now BIGINT DEFAULT NULL
        ) RETURNS VOID LANGUAGE plpgsql AS $$
        DECLARE
            v_now BIGINT := COALESCE(p_now, kgw_now_ns());
        BEGIN
            PERFORM set_config('synchronous_commit', 'off', true);
            UPDATE quota_ledger SET tat_ns = GREATEST(v_now, tat_ns - GREATEST(p_unused, 0) * p_interval)
                WHERE rule_name = p_rule AND key_first = p_first AND key_second = p_second;
        END
        $$
        """,
        """
        CREATE FUNCTION kgw_instance_heartbeat(p_node TEXT, p_window_ns BIGINT) RETURNS BIGINT LANGUAGE plpgsql AS $$
        DECLARE
            v_now BIGINT := kgw_now_ns();
            v_count BIGINT;
        BEGIN
            PERFORM set_config('synchronous_commit', 'off', true);
            INSERT INTO gateway_instances (node_id, seen_ns) VALUES (p_node, v_now)
                ON CONFLICT (node_id) DO UPDATE SET seen_ns = GREATEST(gateway_instances.seen_ns, EXCLUDED.seen_ns);
            SELECT count(*) INTO v_count FROM gateway_instances WHERE seen_ns >= v_now - p_window_ns;
            RETURN v_count;
        END
        $$
        """,
    ]
}
