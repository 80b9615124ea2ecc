import GatewayAudit
import GatewayCore
import NIOPosix

extension AdminAPI.Exchange {
    /// `GET /admin/v1/audit/verification`: recomputes the whole chain and checks every checkpoint's signature, as
    /// `audit verify` does without `--from-checkpoint` or `--public-key` (the report's notes say what that cannot
    /// prove). It reads every record, so an operator's right is needed and one runs at a time per gateway.
    func verifyTrail() async throws -> AdminResponse {
        guard let trail = api.audit else { throw GatewayError(.notFound, "the audit trail is disabled (audit.enabled: false)") }
        let started = api.verification.withLockedValue { running in
            defer { running = true }
            return !running
        }
        guard started else { throw GatewayError(.overloaded, "a verification of the trail is already running; retry when it has ended") }
        defer { api.verification.withLockedValue { $0 = false } }
        let store = trail.store
        let report = try await NIOThreadPool.singleton.runIfActive { try AuditVerifier.verify(path: store) }
        return AdminResponse(.ok, json: AdminJSON.verification(report), requestID: requestID)
    }
}

extension AdminJSON {
    /// What `audit verify` prints, as JSON: the counts, the first problem and the first 100, the notes, each chain.
    static func verification(_ report: VerificationReport) -> JSONValue {
        func problem(_ problem: AuditProblem) -> JSONValue {
            .object([
                ("seq", .int(Int(problem.seq))), ("kind", .string(problem.kind.rawValue)), ("node_id", problem.nodeID.map(JSONValue.string) ?? .null),
                ("detail", .string(problem.detail)),
            ])
        }
        return .object([
            ("intact", .bool(report.isIntact)),
            ("records_checked", .int(report.recordsChecked)),
            ("checkpoints_checked", .int(report.checkpointsChecked)),
            ("anchor_seq", .int(Int(report.anchorSeq))),
            ("last_seq", .int(Int(report.lastSeq))),
            ("newest_checkpoint_seq", .int(Int(report.newestCheckpointSeq))),
            ("problem_count", .int(report.problemCount)),
            ("problems", .array(report.problems.map(problem))),
            ("notes", .array(report.notes.map(JSONValue.string))),
            ("chains", .array(report.chains.map { chain in
                .object([
                    ("node_id", .string(chain.nodeID)), ("records_checked", .int(chain.recordsChecked)), ("anchor_seq", .int(Int(chain.anchorSeq))),
                    ("last_seq", .int(Int(chain.lastSeq))), ("newest_checkpoint_seq", .int(Int(chain.newestCheckpointSeq))),
                    ("problem_count", .int(chain.problemCount)),
                ])
            })),
        ])
    }
}
