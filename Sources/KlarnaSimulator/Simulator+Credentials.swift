import Foundation
import GatewayCore
import X509

/// API keys, client certificates (CSR signing) and mTLS enforcement, per acquirer.
extension Simulator {
    private func credentialJSON(_ credential: KeyRing.Credential) -> JSONValue {
        // The key itself is never shown again after creation; a suffix lets people tell keys apart.
        [
            "credential_id": .string(credential.id), "type": "API_KEY", "status": .string(credential.status),
            "key_suffix": .string(String(credential.key.suffix(4))), "description": credential.description.json,
            "created_at": .string(SimulatorClock.iso8601(credential.createdAt)),
        ]
    }

    private func ownCredentials(_ state: SimulatorState, acquirer: String) -> [KeyRing.Credential] {
        state.keys.order.compactMap { state.keys.credentials[$0] }.filter {
            if case .acquirer(let owner) = $0.principal { return owner.id == acquirer }
            return false
        }
    }

    func listAPIKeys(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let acquirer = call.acquirer.id
        let list = state.withLock { ownCredentials($0, acquirer: acquirer).map(credentialJSON) }
        return SimulatorResponse(status: 200, json: ["credentials": .array(list)])
    }

    func createAPIKey(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let body = try call.jsonBody()
        let key = KlarnaEnvironment.test.apiKeyPrefix + SimulatorID.secret(bytes: 32)
        let id = SimulatorID.short("cred")
        let principal = Principal.acquirer(call.acquirer)
        let now = call.nowMilliseconds
        let description = body["description"]?.stringValue
        let credential: KeyRing.Credential? = state.withLock { state in
            state.keys.add(key: key, principal: principal, id: id, createdAt: now, description: description)
            return state.keys.credentials[id]
        }
        guard let credential else { throw KlarnaError.unavailable("credential store failed") }
        return SimulatorResponse(status: 201, json: credentialJSON(credential).setting("api_key", .string(key)))
    }

    private func withCredential(_ call: Call, _ body: (inout SimulatorState, KeyRing.Credential) throws(KlarnaError) -> JSONValue?) throws(KlarnaError) -> JSONValue? {
        let id = call.parameter("credential_id")
        let acquirer = call.acquirer.id
        let result: Result<JSONValue?, KlarnaError> = state.withLock { state in
            guard let credential = state.keys.credentials[id], case .acquirer(let owner) = credential.principal, owner.id == acquirer else {
                return .failure(KlarnaError.notFound("Credential not found"))
            }
            do throws(KlarnaError) { return .success(try body(&state, credential)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    func readAPIKey(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let json = try withCredential(call) { _, credential throws(KlarnaError) in credentialJSON(credential) }
        return SimulatorResponse(status: 200, json: json ?? .null)
    }

    /// `{"status": "DISABLED"}` disables a key at once (and `ENABLED` brings it back), as Klarna's Disable Credential.
    func updateAPIKey(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let body = try call.jsonBody()
        let status = body["status"]?.stringValue
        if let status, status != "ENABLED" && status != "DISABLED" { throw KlarnaError.validation("status", "must be ENABLED or DISABLED") }
        let json = try withCredential(call) { state, credential throws(KlarnaError) in
            if let status { state.keys.setStatus(id: credential.id, status: status) }
            return state.keys.credentials[credential.id].map(credentialJSON)
        }
        return SimulatorResponse(status: 200, json: json ?? .null)
    }

    func deleteAPIKey(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        _ = try withCredential(call) { state, credential throws(KlarnaError) in
            state.keys.remove(id: credential.id)
            return nil
        }
        return .noContent
    }

    func listClientCertificates(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let acquirer = call.acquirer.id
        let list = state.withLock { state in
            state.clientCertificateOrder.compactMap { state.clientCertificates[$0] }.filter { $0.acquirer == acquirer }.map(\.json)
        }
        return SimulatorResponse(status: 200, json: ["credentials": .array(list)])
    }

    /// Signs the PEM CSR in `certificate_signing_request` (also accepted: `csr`) with the configured CA.
    func createClientCertificate(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let body = try call.jsonBody()
        guard let pki else { throw KlarnaError.unavailable("The simulator has no CA key configured (tls.ca_key_file), so it cannot sign CSRs") }
        guard let csr = (body["certificate_signing_request"] ?? body["csr"])?.stringValue else {
            throw KlarnaError.validation("certificate_signing_request", "is required (PEM)")
        }
        if let usage = body["config"]?["usage"]?.stringValue, usage != "MTLS" { throw KlarnaError.validation("config.usage", "must be MTLS") }
        let certificate: Certificate
        do { certificate = try pki.sign(csrPEM: csr) } catch {
            throw KlarnaError.validation("certificate_signing_request", "\(error)")
        }
        let pem: String
        let fingerprint: String
        do {
            pem = try certificate.serializeAsPEM().pemString
            fingerprint = try SimulatorPKI.fingerprint(of: certificate)
        } catch { throw KlarnaError.unavailable("could not encode the certificate") }
        let record = ClientCertificateRecord(
            id: SimulatorID.short("cred"), acquirer: call.acquirer.id, certificatePEM: pem, fingerprint: fingerprint,
            subject: certificate.subject.description, status: "ENABLED", createdAt: call.nowMilliseconds,
            expiresAt: Int64(certificate.notValidAfter.timeIntervalSince1970 * 1000)
        )
        state.withLock { state in
            state.clientCertificates[record.id] = record
            state.clientCertificateOrder.append(record.id)
        }
        return SimulatorResponse(status: 201, json: record.json)
    }

    private func clientCertificate(_ call: Call) throws(KlarnaError) -> ClientCertificateRecord {
        let id = call.parameter("credential_id")
        let acquirer = call.acquirer.id
        guard let record = state.withLock({ $0.clientCertificates[id] }), record.acquirer == acquirer else { throw KlarnaError.notFound("Credential not found") }
        return record
    }

    func readClientCertificate(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        SimulatorResponse(status: 200, json: try clientCertificate(call).json)
    }

    func updateClientCertificate(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        var record = try clientCertificate(call)
        let body = try call.jsonBody()
        if let status = body["status"]?.stringValue {
            guard status == "ENABLED" || status == "DISABLED" else { throw KlarnaError.validation("status", "must be ENABLED or DISABLED") }
            record.status = status
        }
        let updated = record
        state.withLock { $0.clientCertificates[updated.id] = updated }
        return SimulatorResponse(status: 200, json: updated.json)
    }

    func revokeClientCertificate(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        var record = try clientCertificate(call)
        record.status = "REVOKED"
        let updated = record
        state.withLock { $0.clientCertificates[updated.id] = updated }
        return SimulatorResponse(status: 200, json: updated.json)
    }

    func readEnforcement(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let acquirer = call.acquirer.id
        let from = state.withLock { $0.enforcement[acquirer] }
        return SimulatorResponse(status: 200, json: ["enforced": .bool(from != nil), "enforced_from": from.json])
    }

    func setEnforcement(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let body = try call.jsonBody()
        guard let from = body["enforced_from"]?.stringValue, !from.isEmpty else {
            throw KlarnaError.validation("enforced_from", "is required: NOW or a date at most 3 months ahead")
        }
        let acquirer = call.acquirer.id
        let value = from == "NOW" ? SimulatorClock.iso8601(call.nowMilliseconds) : from
        state.withLock { $0.enforcement[acquirer] = value }
        return SimulatorResponse(status: 200, json: ["enforced": true, "enforced_from": .string(value)])
    }

    func deleteEnforcement(_ call: inout Call) throws(KlarnaError) -> SimulatorResponse {
        let acquirer = call.acquirer.id
        state.withLock { _ = $0.enforcement.removeValue(forKey: acquirer) }
        return .noContent
    }
}
