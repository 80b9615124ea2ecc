import Foundation
import GatewayCore
@testable import GatewayProxy
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

/// The request handler driven through `EmbeddedChannel`s, no sockets: the caller's side is one embedded channel,
/// each upstream connection another on the same loop, placed in the loop's pool as an idle connection. The
/// journal holds every record until the test lets it through, so what may happen before a record is durable is
/// seen. One test per path of a call: refusal, rate-limit wait, retry, outcome unknown, client gone, upstream
/// gone, drain.
@Suite("Request handler paths, in EmbeddedChannel")
struct CallHandlerTests {
    static let read = "/v2/accounts/m1/payment/transactions/krn:payment:eu1:transaction:6debe89e"
    static let capture = read + "/capture"
    static let identity = String(repeating: "ab", count: 32)

    /// Records wait here until `flush`.
    final class HeldJournal: CallJournal, @unchecked Sendable {
        private(set) var pending: [(record: CallRecord, promise: EventLoopPromise<Void>)] = []
        private(set) var written: [CallRecord] = []
        /// The phases this journal would record; others (as an access log drops them) must not be handed over.
        let keeps: Set<CallRecord.Phase>
        private(set) var handedDropped = 0

        /// Writes each record before `record` returns, as the access log and `async` mode answer.
        let atOnce: Bool
        /// Fails each record before `record` returns, as the audit writer refuses one when its queue is full.
        let failsAtOnce: Bool

        init(keeps: Set<CallRecord.Phase> = [.intent, .outcome, .refusal], atOnce: Bool = false, failsAtOnce: Bool = false) {
            self.keeps = keeps
            self.atOnce = atOnce
            self.failsAtOnce = failsAtOnce
        }

        func wouldRecord(phase: CallRecord.Phase) -> Bool { keeps.contains(phase) }

        func record(_ record: CallRecord, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
            if !keeps.contains(record.phase) { handedDropped += 1 }
            if failsAtOnce { return eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel) }
            if atOnce {
                written.append(record)
                return eventLoop.makeSucceededVoidFuture()
            }
            let promise = eventLoop.makePromise(of: Void.self)
            pending.append((record, promise))
            return promise.futureResult
        }

        /// Lets every pending record through (or fails them all, as a full disk would).
        func flush(failing: Bool = false) {
            let records = pending
            pending = []
            for (record, promise) in records {
                if failing {
                    promise.fail(ChannelError.ioOnClosedChannel)
                } else {
                    written.append(record)
                    promise.succeed(())
                }
            }
        }

        var phases: [CallRecord.Phase] { written.map(\.phase) }
    }

    /// One caller connection, its runtime and the loop everything runs on.
    final class Rig {
        let loop = EmbeddedEventLoop()
        let journal: HeldJournal
        let runtime: ProxyRuntime
        let ingress: EmbeddedChannel
        let token = CallerToken.generate()

        init(
            rateLimits: RateLimitPolicy = RateLimitPolicy(), retry: RetryPolicy = RetryPolicy(), addKeys: Bool = true, maxHeld: Int = 4_194_304,
            journal: HeldJournal = HeldJournal()
        ) throws {
            self.journal = journal
            let partner = PartnerState(
                record: PartnerRecord(
                    id: "acq", environment: .test, baseURL: "https://api-global.test.klarna.com", apiKey: CredentialRef(id: "partner:acq:api-key", version: 1),
                    clientCertificatePEM: "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", clientKey: CredentialRef(id: "partner:acq:client-key", version: 1)),
                apiKey: Secret("klarna_test_api_" + String(repeating: "A", count: 40)), clientKeyPEM: Secret("key"), certificateFingerprint: CallHandlerTests.identity)!
            let merchant = MerchantState(
                record: MerchantRecord(id: "m1", partnerID: "acq", account: AccountKRN("krn:partner:global:account:test:M1")!, groups: [], status: .active, apiKey: nil),
                ownKey: nil, form: .rawKey)
            let snapshot = GatewaySnapshot(
                partners: [partner], merchants: [merchant],
                callers: [CallerRecord(id: "checkout", tokenID: token.id, tokenHash: token.secretHash, certificateFingerprint: nil)],
                access: AccessPolicy(callers: ["checkout": Grant(merchants: ["m1"], partners: ["acq"], families: ["*"])]),
                catalogue: try OperationCatalogue(tsv: String(contentsOf: Self.catalogueFile, encoding: .utf8)),
                settings: PipelineSettings(egress: [], integrationMetadata: "{}", forwardUnknownOperations: false),
                rateLimits: rateLimits, version: 1)
            runtime = try ProxyRuntime(
                snapshots: SnapshotHolder(snapshot), group: loop, upstreamCAPEM: nil, limits: IngressLimits(maxHeldResponseBytes: maxHeld),
                resilience: ResiliencePolicy(retry: retry, addIdempotencyKeys: addKeys), maxIdlePerKey: 8, journal: journal,
                logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
            ingress = EmbeddedChannel(handler: GatewayRequestHandler(runtime: runtime, isHTTP2: false), loop: loop)
            try ingress.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40_000)).wait()
        }

        static let catalogueFile = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("config/catalogue/operations.tsv")

        /// An open upstream connection, idle in the loop's pool.
        func idleUpstream() throws -> EmbeddedChannel {
            let handler = UpstreamConnectionHandler()
            let channel = EmbeddedChannel(handler: handler, loop: loop)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.2", port: 443)).wait()
            let key = UpstreamPool.Key(host: "api-global.test.klarna.com", port: 443, identity: CallHandlerTests.identity)
            pool.release(UpstreamConnection(channel: channel, handler: handler, key: key), reusable: true)
            return channel
        }

        var pool: UpstreamPool { runtime.pools.pool(for: loop) }

        /// Sends a whole request from the caller.
        func request(_ method: HTTPMethod, _ uri: String, headers extra: [(String, String)] = [], body: String? = nil, on caller: EmbeddedChannel? = nil) throws {
            let ingress = caller ?? ingress
            var headers = HTTPHeaders([("Host", "gw"), ("Authorization", "Bearer " + token.rendered.exposedValue)] + extra)
            if let body { headers.add(name: "Content-Length", value: String(body.utf8.count)) }
            try ingress.writeInbound(HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: headers)))
            if let body { try ingress.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: body))) }
            try ingress.writeInbound(HTTPServerRequestPart.end(nil))
        }

        /// What the caller received so far: the status, the body, whether the end came.
        func answer() throws -> (status: Int?, body: String, ended: Bool) {
            var status: Int?
            var body = ""
            var ended = false
            while let part = try ingress.readOutbound(as: HTTPServerResponsePart.self) {
                switch part {
                case .head(let head): status = Int(head.status.code)
                case .body(.byteBuffer(let buffer)): body += String(buffer: buffer)
                case .body: break
                case .end: ended = true
                }
            }
            return (status, body, ended)
        }

        /// The request parts Klarna received on `upstream`: the head's method and URI, and whether the end came.
        func received(on upstream: EmbeddedChannel) throws -> (head: HTTPRequestHead?, ended: Bool) {
            var head: HTTPRequestHead?
            var ended = false
            while let part = try upstream.readOutbound(as: HTTPClientRequestPart.self) {
                switch part {
                case .head(let h): head = h
                case .body: break
                case .end: ended = true
                }
            }
            return (head, ended)
        }

        /// Klarna answers on `upstream`.
        func respond(on upstream: EmbeddedChannel, _ status: HTTPResponseStatus, body: String, headers: [(String, String)] = []) throws {
            let head = HTTPResponseHead(version: .http1_1, status: status, headers: HTTPHeaders([("Content-Length", String(body.utf8.count))] + headers))
            try upstream.writeInbound(HTTPClientResponsePart.head(head))
            try upstream.writeInbound(HTTPClientResponsePart.body(ByteBuffer(string: body)))
            try upstream.writeInbound(HTTPClientResponsePart.end(nil))
        }
    }

    @Test("refusal: the 401 leaves only once its record is written, and nothing reaches Klarna")
    func refusal() throws {
        let rig = try Rig()
        let upstream = try rig.idleUpstream()
        var headers = HTTPHeaders([("Host", "gw"), ("Authorization", "Bearer kgw_nope.nope")])
        headers.add(name: "Content-Length", value: "0")
        try rig.ingress.writeInbound(HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: Self.read, headers: headers)))
        try rig.ingress.writeInbound(HTTPServerRequestPart.end(nil))
        #expect(try rig.answer().status == nil, "answered before the refusal was recorded")
        #expect(rig.journal.pending.map(\.record.phase) == [.refusal])
        rig.journal.flush()
        let answer = try rig.answer()
        #expect(answer.status == 401 && answer.ended)
        #expect(answer.body.contains("GATEWAY_UNAUTHENTICATED"))
        #expect(try rig.received(on: upstream).head == nil)
        #expect(rig.ingress.isActive, "a keep-alive caller keeps its connection after a refusal")
        #expect(rig.runtime.callsInFlight == 0)
    }

    @Test("a held answer: intent before anything is sent, the answer only after its outcome is written; the connection goes back to the pool")
    func heldAnswer() throws {
        let rig = try Rig()
        let upstream = try rig.idleUpstream()
        try rig.request(.GET, Self.read)
        #expect(try rig.received(on: upstream).head == nil, "sent before the intent was recorded")
        rig.journal.flush()
        let sent = try rig.received(on: upstream)
        #expect(sent.head?.uri == "/v2/accounts/krn:partner:global:account:test:M1/payment/transactions/krn:payment:eu1:transaction:6debe89e")
        #expect(sent.ended)
        try rig.respond(on: upstream, .ok, body: #"{"ok":true}"#)
        #expect(try rig.answer().status == nil, "released before the outcome was recorded")
        rig.journal.flush()
        let answer = try rig.answer()
        #expect(answer.status == 200 && answer.body == #"{"ok":true}"# && answer.ended)
        #expect(rig.journal.phases == [.intent, .outcome])
        // The next call takes the same connection from the pool.
        try rig.request(.GET, Self.read)
        rig.journal.flush()
        #expect(try rig.received(on: upstream).head != nil)
    }

    @Test("a journal that would drop a phase is not handed it: the call goes on at the end of the loop's turn, and records it keeps still hold the call")
    func droppedPhasesAreNotHandedOver() throws {
        // As the access log alone at `info`: intents dropped, outcomes kept.
        let rig = try Rig(journal: HeldJournal(keeps: [.outcome, .refusal]))
        let upstream = try rig.idleUpstream()
        try rig.request(.GET, Self.read)
        // `EmbeddedChannel` runs no task of its loop by itself: the turn ends when the test runs them.
        #expect(try rig.received(on: upstream).head == nil, "sent from inside the read, not at the end of the loop's turn")
        rig.loop.run()
        #expect(try rig.received(on: upstream).head != nil, "waited for an intent the journal does not keep")
        try rig.respond(on: upstream, .ok, body: #"{"ok":true}"#)
        #expect(try rig.answer().status == nil, "released before the outcome was recorded")
        #expect(rig.journal.pending.map(\.record.phase) == [.outcome])
        rig.journal.flush()
        #expect(try rig.answer().status == 200)

        // As the access log alone at `warning`: nothing kept, nothing handed over, every call answered.
        let quiet = try Rig(journal: HeldJournal(keeps: []))
        let next = try quiet.idleUpstream()
        try quiet.request(.GET, Self.read)
        quiet.loop.run()
        try quiet.respond(on: next, .ok, body: #"{"ok":true}"#)
        #expect(try quiet.answer().status == nil, "answered from inside Klarna's read, not at the end of the loop's turn")
        quiet.loop.run()
        #expect(try quiet.answer().status == 200)
        let refused = HTTPHeaders([("Host", "gw"), ("Authorization", "Bearer kgw_nope.nope"), ("Content-Length", "0")])
        try quiet.ingress.writeInbound(HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: Self.read, headers: refused)))
        try quiet.ingress.writeInbound(HTTPServerRequestPart.end(nil))
        quiet.loop.run()
        #expect(try quiet.answer().status == 401)
        #expect(quiet.journal.pending.isEmpty && quiet.journal.written.isEmpty && quiet.journal.handedDropped == 0)
        #expect(quiet.runtime.callsInFlight == 0)
    }

    @Test("two callers' calls read in one turn of the loop both go on at its end, with one run of its tasks")
    func callsOfOneTurnGoOnTogether() throws {
        let rig = try Rig(journal: HeldJournal(keeps: []))
        let upstreams = [try rig.idleUpstream(), try rig.idleUpstream()]
        let second = EmbeddedChannel(handler: GatewayRequestHandler(runtime: rig.runtime, isHTTP2: false), loop: rig.loop)
        try second.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40_001)).wait()
        try rig.request(.GET, Self.read)
        try rig.request(.GET, Self.read, on: second)
        #expect(try upstreams.allSatisfy { try rig.received(on: $0).head == nil }, "a call was sent before the turn ended")
        let memo = try #require(rig.runtime.loopMemos.memo(for: rig.loop))
        #expect(memo.turnEnd.tasksAsked == 1, "one task for the turn's answers, not one per call")
        rig.loop.run()
        #expect(try upstreams.allSatisfy { try rig.received(on: $0).head != nil }, "a call read in the turn was not sent at its end")
        #expect(rig.runtime.callsInFlight == 2)
    }

    @Test("the caller leaves before the turn ends: its held answer finds the call gone, and nothing reaches Klarna")
    func callerGoneBeforeTheTurnEnds() throws {
        let rig = try Rig(journal: HeldJournal(keeps: []))
        let upstream = try rig.idleUpstream()
        try rig.request(.GET, Self.read)
        try rig.ingress.close().wait()
        rig.loop.run()
        #expect(try rig.received(on: upstream).head == nil, "sent for a caller that had gone")
        #expect(rig.runtime.callsInFlight == 0)
        #expect(upstream.isActive, "the idle connection was taken or closed for a call that had ended")
    }

    @Test("a journal that fails a record before `record` returns: the call is refused 503 at the end of the turn, and nothing is sent")
    func failureAtOnceWaitsForTheTurnEnd() throws {
        let rig = try Rig(journal: HeldJournal(failsAtOnce: true))
        let upstream = try rig.idleUpstream()
        try rig.request(.GET, Self.read)
        #expect(try rig.answer().status == nil, "refused from inside the journal's `record`, not at the end of the loop's turn")
        rig.loop.run()
        let answer = try rig.answer()
        #expect(answer.status == 503 && answer.body.contains("GATEWAY_AUDIT_UNAVAILABLE"), "\(answer)")
        #expect(try rig.received(on: upstream).head == nil)
        #expect(rig.runtime.callsInFlight == 0)
    }

    @Test("a journal that answers before `record` returns (the access log): the answer waits for the end of the loop's turn")
    func answerAtOnceWaitsForTheTurnEnd() throws {
        let rig = try Rig(journal: HeldJournal(keeps: [.outcome, .refusal], atOnce: true))
        let upstream = try rig.idleUpstream()
        try rig.request(.GET, Self.read)
        rig.loop.run()
        #expect(try rig.received(on: upstream).head != nil)
        try rig.respond(on: upstream, .ok, body: #"{"ok":true}"#)
        #expect(rig.journal.phases == [.outcome])
        #expect(try rig.answer().status == nil, "answered from inside the journal's `record`, not at the end of the loop's turn")
        rig.loop.run()
        #expect(try rig.answer().status == 200)
        #expect(rig.runtime.callsInFlight == 0)
    }

    @Test("Klarna answers before the request's end: an end arriving while the outcome is journaled does not lose the answer")
    func answerBeforeRequestEnd() throws {
        let rig = try Rig()
        let upstream = try rig.idleUpstream()
        let headers = HTTPHeaders([("Host", "gw"), ("Authorization", "Bearer " + rig.token.rendered.exposedValue), ("Content-Length", "4"),
                                   ("Klarna-Idempotency-Key", "k-1")])
        try rig.ingress.writeInbound(HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: .POST, uri: Self.capture, headers: headers)))
        try rig.ingress.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "ab")))
        rig.journal.flush()
        try rig.respond(on: upstream, .badRequest, body: #"{"error_code":"BAD_VALUE"}"#)
        try rig.ingress.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "cd")))
        try rig.ingress.writeInbound(HTTPServerRequestPart.end(nil))
        rig.journal.flush()
        let answer = try rig.answer()
        #expect(answer.status == 400 && answer.ended)
        #expect(rig.journal.phases == [.intent, .outcome])
        #expect(rig.runtime.callsInFlight == 0)
        #expect(!upstream.isActive, "a connection whose request was cut short is not reused")
    }

    @Test("rate-limit wait: a shaped call waits for room before its intent, then goes through")
    func rateLimitWait() throws {
        let policy = RateLimitPolicy(caller: LimitSpec(rate: 1, burst: 1), options: ["caller": RuleOptions(maxDelayMs: 5_000)])
        let rig = try Rig(rateLimits: policy)
        let first = try rig.idleUpstream()
        try rig.request(.GET, Self.read)
        rig.journal.flush()
        try rig.respond(on: first, .ok, body: "{}")
        rig.journal.flush()
        #expect(try rig.answer().status == 200)

        try rig.request(.GET, Self.read)
        #expect(rig.journal.pending.isEmpty, "the second call was not held for room")
        rig.loop.advanceTime(by: .seconds(2))
        #expect(rig.journal.pending.map(\.record.phase) == [.intent])
        rig.journal.flush()
        try rig.respond(on: first, .ok, body: "{}")
        rig.journal.flush()
        #expect(try rig.answer().status == 200)
    }

    @Test("retry: a 503 to a read is tried again after the back-off on another connection; the caller sees only the 200")
    func retry() throws {
        let rig = try Rig(retry: RetryPolicy(maxAttempts: 2, backoff: Backoff(baseMs: 100, capMs: 100)))
        let first = try rig.idleUpstream()
        try rig.request(.GET, Self.read)
        rig.journal.flush()
        try rig.respond(on: first, .serviceUnavailable, body: "{}")
        #expect(try rig.answer().status == nil)
        #expect(rig.journal.pending.isEmpty, "a retried answer gets no outcome record")
        let second = try rig.idleUpstream()
        rig.loop.advanceTime(by: .seconds(1))
        #expect(try rig.received(on: second).head != nil, "no second attempt after the back-off")
        try rig.respond(on: second, .ok, body: #"{"second":true}"#)
        rig.journal.flush()
        let answer = try rig.answer()
        #expect(answer.status == 200 && answer.body == #"{"second":true}"#)
        #expect(rig.journal.written.last?.upstreamAttempts == 2)
    }

    /// Stands for a socket that refuses the write: the flush closes the channel, failing what was written.
    final class RefusingFlush: ChannelOutboundHandler {
        typealias OutboundIn = HTTPClientRequestPart
        func flush(context: ChannelHandlerContext) { context.close(promise: nil) }
    }

    @Test("a request whose write the connection refused was not sent: even a key-less POST is tried again on another connection")
    func refusedWriteIsNotSent() throws {
        let rig = try Rig(retry: RetryPolicy(maxAttempts: 2, backoff: Backoff(baseMs: 100, capMs: 100)), addKeys: false)
        let second = try rig.idleUpstream()
        let refusing = try rig.idleUpstream()  // the pool hands out its newest idle connection first
        try refusing.pipeline.syncOperations.addHandler(RefusingFlush(), position: .first)
        try rig.request(.POST, Self.capture, headers: [("Content-Type", "application/json")], body: #"{"captured_amount":100}"#)
        rig.journal.flush()
        #expect(!refusing.isActive)
        rig.loop.advanceTime(by: .seconds(1))
        let sent = try rig.received(on: second)
        #expect(sent.head?.method == .POST, "a request Klarna never saw was not tried again")
        try rig.respond(on: second, .ok, body: #"{"ok":true}"#)
        rig.journal.flush()
        #expect(try rig.answer().status == 200)
        #expect(rig.journal.written.last?.upstreamAttempts == 2)
    }

    @Test("outcome unknown: a key-less POST whose connection drops after sending is not sent again; 504 names the risk")
    func outcomeUnknown() throws {
        let rig = try Rig(addKeys: false)
        let upstream = try rig.idleUpstream()
        try rig.request(.POST, Self.capture, headers: [("Content-Type", "application/json")], body: #"{"captured_amount":100}"#)
        rig.journal.flush()
        let sent = try rig.received(on: upstream)
        #expect(sent.head?.method == .POST)
        #expect(sent.head?.headers["Klarna-Idempotency-Key"].isEmpty == true)
        try upstream.close().wait()
        rig.journal.flush()
        let answer = try rig.answer()
        #expect(answer.status == 504)
        #expect(answer.body.contains("GATEWAY_UPSTREAM_OUTCOME_UNKNOWN"))
        #expect(rig.journal.phases == [.intent, .refusal])
        #expect(rig.journal.written.last?.upstreamAttempts == 1)
    }

    @Test("client gone mid-exchange: the upstream connection is closed, not pooled, and no outcome is recorded")
    func clientGone() throws {
        let rig = try Rig()
        let upstream = try rig.idleUpstream()
        try rig.request(.GET, Self.read)
        rig.journal.flush()
        #expect(try rig.received(on: upstream).head != nil)
        try rig.ingress.close().wait()
        #expect(!upstream.isActive)
        #expect(rig.runtime.callsInFlight == 0)
        #expect(rig.journal.pending.isEmpty && rig.journal.phases == [.intent])
    }

    @Test("upstream gone while the answer streams (past the hold limit): the caller's connection is cut, not answered by the gateway")
    func upstreamGoneWhileStreaming() throws {
        let rig = try Rig(maxHeld: 8)
        let upstream = try rig.idleUpstream()
        try rig.request(.GET, Self.read)
        rig.journal.flush()
        try upstream.writeInbound(HTTPClientResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: ["Content-Length": "100"])))
        try upstream.writeInbound(HTTPClientResponsePart.body(ByteBuffer(string: String(repeating: "x", count: 20))))
        let streamed = try rig.answer()
        #expect(streamed.status == 200 && streamed.body.count == 20 && !streamed.ended)
        try upstream.close().wait()
        #expect(!rig.ingress.isActive)
        #expect(rig.journal.pending.isEmpty && rig.journal.phases == [.intent])
    }

    /// The last `autoRead` set on an embedded channel (its `getOption` always answers true); true when never set.
    func autoRead(_ channel: EmbeddedChannel) -> Bool {
        channel.options.last { $0.option is ChannelOptions.Types.AutoReadOption }.map { $0.value as! Bool } ?? true
    }

    @Test("flow control: each side reads only while the other can be written, and both read again when the exchange ends")
    func flowControl() throws {
        let rig = try Rig(maxHeld: 8)
        let upstream = try rig.idleUpstream()
        let headers = HTTPHeaders([("Host", "gw"), ("Authorization", "Bearer " + rig.token.rendered.exposedValue), ("Content-Length", "4"),
                                   ("Klarna-Idempotency-Key", "k-flow")])
        try rig.ingress.writeInbound(HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: .POST, uri: Self.capture, headers: headers)))
        rig.journal.flush()
        #expect(try rig.received(on: upstream).head != nil)
        // Klarna's connection cannot take more of the body: the caller's side stops reading until it can.
        upstream.isWritable = false
        upstream.pipeline.fireChannelWritabilityChanged()
        #expect(autoRead(rig.ingress) == false)
        upstream.isWritable = true
        upstream.pipeline.fireChannelWritabilityChanged()
        #expect(autoRead(rig.ingress) == true)
        try rig.ingress.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "abcd")))
        try rig.ingress.writeInbound(HTTPServerRequestPart.end(nil))
        // The answer streams (past the 8-byte hold): a caller that cannot take more stops Klarna's connection.
        try upstream.writeInbound(HTTPClientResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: ["Content-Length": "40"])))
        try upstream.writeInbound(HTTPClientResponsePart.body(ByteBuffer(string: String(repeating: "x", count: 20))))
        rig.ingress.isWritable = false
        rig.ingress.pipeline.fireChannelWritabilityChanged()
        #expect(autoRead(upstream) == false)
        rig.ingress.isWritable = true
        rig.ingress.pipeline.fireChannelWritabilityChanged()
        #expect(autoRead(upstream) == true)
        rig.ingress.isWritable = false
        rig.ingress.pipeline.fireChannelWritabilityChanged()
        try upstream.writeInbound(HTTPClientResponsePart.body(ByteBuffer(string: String(repeating: "y", count: 20))))
        try upstream.writeInbound(HTTPClientResponsePart.end(nil))
        rig.journal.flush()
        #expect(try rig.answer().ended)
        #expect(autoRead(upstream) == true, "a connection goes back to the pool reading")
        #expect(autoRead(rig.ingress) == true)
    }

    @Test("drain: a connection presenting a retired certificate finishes its call, then is closed instead of pooled")
    func drain() throws {
        let rig = try Rig()
        let upstream = try rig.idleUpstream()
        try rig.request(.GET, Self.read)
        rig.journal.flush()
        rig.pool.retire(keeping: ["another-certificate"], drain: .seconds(30))
        #expect(upstream.isActive, "a busy connection is not cut at the rotation")
        try rig.respond(on: upstream, .ok, body: "{}")
        rig.journal.flush()
        #expect(try rig.answer().status == 200)
        #expect(!upstream.isActive)
        #expect(rig.pool.drained["after_call"] == 1)
    }
}
