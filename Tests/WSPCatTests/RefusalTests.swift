import Foundation
import Glibc
import Testing
import WSP

/// Issue 10 at the command line: a keep-listening server survives every per-request failure,
/// and each refusal or drop is one line with its reason, on both sides.
extension WSPCatEndToEnd {
    /// A client whose callee buffer is smaller than --callee-data is refused with a reason
    /// (not accepted into a failure), and the listener goes on serving.
    @Test func aTinyCalleeBufferDoesNotEndTheListener() throws {
        let server = try Run(["listen", "127.0.0.1:0", "-k", "--echo", "--callee-data", "welcome"])
        defer { server.stop() }
        let port = try server.port()
        let provider = try Provider()
        do throws(WSPError) {
            let conn = try provider.connect(to: .loopback(port: UInt16(port)), callerData: [1],
                                            calleeCapacity: 3)
            Issue.record("accepted with callee data \(conn.calleeData)")
        } catch {
            #expect(error == .connectionRefused)
            #expect(error.refusal == .rejected)
        }
        #expect(server.logs("reject 127.0.0.1:", "this client takes at most 3"), "\(server.stderr)")
        let good = try connect(port, ["--data", "x"], stdin: "still here\n")
        #expect(good.exitStatus() == 0, "\(good.stderr)")
        #expect(good.stdout == "still here\n")
        #expect(server.isRunning)
    }

    /// Caller data over the listener's limit: the client says why it was refused, the
    /// server logs the drop with the same reason.
    @Test func aDropIsLoggedWithItsReasonOnBothSides() throws {
        let server = try Run(["listen", "127.0.0.1:0", "-k", "--echo"])
        defer { server.stop() }
        let port = try server.port()
        let client = try connect(port, ["--data", String(repeating: "x", count: 2000)])
        #expect(client.exitStatus() == 2, "\(client.stderr)")
        #expect(client.stderr.contains("the caller data or QoS was longer than the server takes"),
                "\(client.stderr)")
        #expect(server.logs("drop 127.0.0.1:", "WSP_REASON_DATA_TOO_LONG"), "\(server.stderr)")
        #expect(server.isRunning)
    }

    /// An ordinary TCP client (netcat's habit) on a connect-data port is dropped as
    /// malformed, and that is logged.
    @Test func aMalformedClientIsLogged() throws {
        let server = try Run(["listen", "127.0.0.1:0", "-k", "--echo"])
        defer { server.stop() }
        let port = try server.port()
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = UInt16(port).bigEndian
        sin.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let rc = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        #expect(rc == 0)
        let hello = Array("GET / HTTP/1.0\r\n\r\n".utf8)
        #expect(hello.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == hello.count)
        #expect(server.logs("drop 127.0.0.1:", "WSP_REASON_MALFORMED"), "\(server.stderr)")
    }

    /// JSON logs carry data as JSON text, shortened when long.
    @Test func jsonLogsCarryDataAsJSON() throws {
        let server = try Run(["listen", "127.0.0.1:0", "-k", "--echo", "--log-format", "json"])
        defer { server.stop() }
        let port = try server.port()
        for data in ["café", String(repeating: "é", count: 100)] {
            let client = try connect(port, ["--data", data])
            #expect(client.exitStatus() == 0, "\(client.stderr)")
        }
        #expect(server.logs("\"event\":\"closed\""))
        let accepts = server.stderrLines.compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }.filter { $0["event"] as? String == "accept" }
        #expect(accepts.count == 2, "\(server.stderr)")
        #expect(accepts.first?["data"] as? String == "café")
        let long = accepts.last?["data"] as? String
        #expect(long.map { $0.utf8.count <= 64 && $0.allSatisfy { $0 == "é" } } == true, "\(server.stderr)")
        #expect(accepts.last?["dataLength"] as? Int == 200)
    }
}
