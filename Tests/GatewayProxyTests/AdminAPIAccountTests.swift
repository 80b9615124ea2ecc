import Foundation
import GatewayApp
import GatewayCore
import GatewayTestSupport
import Testing

/// `GET /admin/v1/account`: whose token a request carries.
@Suite("Admin API account")
struct AdminAPIAccountTests {
    @Test("each role's token answers its own account name and role, nothing secret; no token is 401")
    func account() async throws {
        try await withAdminAPI { api in
            var text = ""
            for role in AdminRole.allCases {
                let answer = try await api.send("GET", "/admin/v1/account", as: role)
                #expect(answer.status == 200)
                #expect(answer.json == .object([("name", .string("\(role.rawValue)-admin")), ("role", .string(role.rawValue))]))
                text += answer.text
            }
            try await api.expectNoSecret(in: text)
            #expect(try await api.send("GET", "/admin/v1/account", as: nil).status == 401)
        }
    }
}
