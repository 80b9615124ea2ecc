import Foundation
import NIOSSL

/// The OpenTelemetry exporter environment variables the gateway's OTLP/HTTP export reads (the ones swift-otel
/// read before it): headers for an authenticating collector and the certificates of an `https://` endpoint.
/// The `_TRACES_` variant of each wins over the general one, as the OpenTelemetry specification says.
struct OTLPEnvironment: Sendable {
    /// `OTEL_EXPORTER_OTLP_(TRACES_)HEADERS`: `name=value` pairs, comma-separated, values percent-decoded.
    var headers: [(String, String)] = []
    /// `OTEL_EXPORTER_OTLP_(TRACES_)CERTIFICATE`: the CA file that verifies the collector.
    var certificate: String?
    /// `OTEL_EXPORTER_OTLP_(TRACES_)CLIENT_CERTIFICATE` and `…_CLIENT_KEY`: the gateway's client identity (mTLS).
    var clientCertificate: String?
    var clientKey: String?

    init(_ environment: [String: String]) {
        func value(_ name: String) -> String? {
            environment["OTEL_EXPORTER_OTLP_TRACES_" + name] ?? environment["OTEL_EXPORTER_OTLP_" + name]
        }
        if let list = value("HEADERS") {
            headers = list.split(separator: ",").compactMap { pair in
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2 else { return nil }
                let name = parts[0].trimmingCharacters(in: .whitespaces)
                let text = parts[1].trimmingCharacters(in: .whitespaces)
                guard !name.isEmpty else { return nil }
                return (name, text.removingPercentEncoding ?? text)
            }
        }
        certificate = value("CERTIFICATE")
        clientCertificate = value("CLIENT_CERTIFICATE")
        clientKey = value("CLIENT_KEY")
    }

    /// TLS for an `https://` collector: the system's roots unless a CA file is named, and the client identity if
    /// both of its files are.
    func tlsConfiguration() throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let certificate { tls.trustRoots = .file(certificate) }
        if let clientCertificate, let clientKey {
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(clientCertificate).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: clientKey, format: .pem))
        }
        return tls
    }
}
