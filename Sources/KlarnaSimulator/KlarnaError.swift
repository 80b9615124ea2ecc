import Foundation
import GatewayCore

/// An error answer in Klarna's shape: `{"error_id","error_type","error_code","error_message"}`, plus
/// `validation_errors` for 400s.
struct KlarnaError: Error, Sendable {
    /// One rejected field of a validation error.
    struct FieldError: Sendable {
        let parameter: String
        let reason: String
    }

    let status: Int
    let type: String
    let code: String
    let message: String
    var validationErrors: [FieldError] = []
    var headers: [(String, String)] = []

    static func validation(_ errors: [FieldError], message: String = "Request validation failed") -> KlarnaError {
        KlarnaError(status: 400, type: "INPUT_ERROR", code: "VALIDATION_ERROR", message: message, validationErrors: errors)
    }

    static func validation(_ parameter: String, _ reason: String) -> KlarnaError {
        validation([FieldError(parameter: parameter, reason: reason)])
    }

    static func badJSON(_ reason: String) -> KlarnaError {
        KlarnaError(status: 400, type: "INPUT_ERROR", code: "VALIDATION_ERROR", message: "The request body is not valid JSON: \(reason)")
    }

    static let unauthorized = KlarnaError(status: 401, type: "ACCESS_ERROR", code: "UNAUTHORIZED", message: "Authentication failed: missing or invalid credentials")

    static func forbidden(_ message: String) -> KlarnaError {
        KlarnaError(status: 403, type: "RESOURCE_ERROR", code: "OPERATION_FORBIDDEN", message: message)
    }

    static func notFound(_ message: String = "The requested resource was not found") -> KlarnaError {
        KlarnaError(status: 404, type: "RESOURCE_ERROR", code: "RESOURCE_NOT_FOUND", message: message)
    }

    static let unknownRoute = KlarnaError(status: 404, type: "RESOURCE_ERROR", code: "NOT_FOUND", message: "No such endpoint")

    static func conflict(_ message: String) -> KlarnaError {
        KlarnaError(status: 409, type: "RESOURCE_ERROR", code: "RESOURCE_CONFLICT", message: message)
    }

    static func rateLimited(headers: [(String, String)]) -> KlarnaError {
        KlarnaError(status: 429, type: "ACCESS_ERROR", code: "RATE_LIMITED", message: "Rate limit exceeded", headers: headers)
    }

    static func unavailable(_ message: String) -> KlarnaError {
        KlarnaError(status: 503, type: "TECHNICAL_ERROR", code: "SERVICE_UNAVAILABLE", message: message)
    }

    static func technical(status: Int, code: String, message: String) -> KlarnaError {
        KlarnaError(status: status, type: status >= 500 ? "TECHNICAL_ERROR" : (status == 401 || status == 429 ? "ACCESS_ERROR" : (status == 400 ? "INPUT_ERROR" : "RESOURCE_ERROR")), code: code, message: message)
    }

    var json: JSONValue {
        var members: [(String, JSONValue)] = [
            ("error_id", .string(UUID().uuidString.lowercased())), ("error_type", .string(type)), ("error_code", .string(code)),
            ("error_message", .string(message)), ("doc_url", .string("https://docs.klarna.com/api/errors/#\(code.lowercased())")),
        ]
        if !validationErrors.isEmpty {
            members.append(("validation_errors", .array(validationErrors.map { ["parameter": .string($0.parameter), "reason": .string($0.reason)] })))
        }
        return .object(members)
    }

    var response: SimulatorResponse {
        SimulatorResponse(status: status, headers: headers, json: json)
    }
}
