import KlarnaSimulator

/// Klarna's side of an end-to-end test: its CA, its server certificate, and the acquirer's client certificate it
/// trusts, with the simulator configuration that serves them to acquirer ACQ1.
struct KlarnaSidePKI {
    let ca: SimulatorPKI
    let server: SimulatorPKI.Identity
    let acquirer: SimulatorPKI.Identity

    init() throws {
        (ca, _) = try SimulatorPKI.makeCA(name: "simulated Klarna CA")
        server = try ca.issueServer()
        acquirer = try ca.issueClient(commonName: "ACQ1 acquirer")
    }

    /// A simulator for acquirer ACQ1 (API key `acquirerKey`) and `merchants`.
    func configuration(
        acquirerKey: String, merchants: [SimulatorConfiguration.Merchant], rateLimits: SimulatorConfiguration.RateLimits?,
        recordCapacity: Int? = nil, recordedHeaders: [String]? = nil
    ) -> SimulatorConfiguration {
        SimulatorConfiguration(
            tls: .init(certificatePEM: server.certificatePEM, keyPEM: server.privateKeyPEM, clientCAPEM: ca.certificatePEM),
            acquirers: [.init(id: "ACQ1", krn: "krn:partner:global:account:test:ACQ1", apiKeys: [acquirerKey])],
            merchants: merchants, rateLimits: rateLimits, recordCapacity: recordCapacity, recordedHeaders: recordedHeaders)
    }
}
