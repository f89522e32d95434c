import CWSP
import Foundation
import Testing
import WSP

/// A C condition function (a capture-free closure converts to `LPCONDITIONPROC`): accept
/// caller data "token" with callee data "welcome", reject anything else.
private let admitToken: LPCONDITIONPROC = { _, callerData, _, _, _, calleeData, _, _ in
    guard let cd = callerData, cd.pointee.len == 5, let p = cd.pointee.buf,
          memcmp(p, "token", 5) == 0, let out = calleeData, out.pointee.len >= 7
    else { return CF_REJECT }
    memcpy(out.pointee.buf, "welcome", 7)
    out.pointee.len = 7
    return CF_ACCEPT
}

private func withSockaddr<R>(_ a: Address, _ body: (UnsafePointer<sockaddr>, Int32) -> R) -> R {
    var ss = sockaddr_storage()
    var len = Int32(MemoryLayout<sockaddr_storage>.size)
    var err: Int32 = 0
    let table = rawTable()
    defer { rawCleanup(table) }
    return withUnsafeMutablePointer(to: &ss) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
            _ = table.lpWSPStringToAddress(a.description, a.family == .ipv6 ? AF_INET6 : AF_INET, nil, sa, &len, &err)
            return body(sa, len)
        }
    }
}

private func cString(_ chars: [CChar]) -> String {
    String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

extension AllTests {
@Suite(.timeLimit(.minutes(1))) struct InteropTests {
    /// A client written against the raw C table (blocking, on a Dispatch thread) talks to a
    /// Swift async server.
    @Test func cClientAgainstSwiftAsyncServer() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let address = try listener.localAddress
        let client = Task {
            await offPool { () -> (rc: Int32, err: Int32, callee: String, greeting: String) in
                let t = rawTable()
                defer { rawCleanup(t) }
                var err: Int32 = 0
                var info = WSAPROTOCOL_INFO()
                info.dwCatalogEntryId = DWORD(WSP_CATALOG_CDATA_IPV4)
                let s = t.lpWSPSocket(0, 0, 0, &info, 0, 0, &err)
                defer { _ = t.lpWSPCloseSocket(s, &err) }
                var caller = Array("from C".utf8CString.dropLast())
                var callee = [CChar](repeating: 0, count: 64)
                let rc: Int32 = caller.withUnsafeMutableBufferPointer { cb in
                    callee.withUnsafeMutableBufferPointer { eb in
                        var callerBuf = WSABUF(len: UInt32(cb.count), buf: cb.baseAddress)
                        var calleeBuf = WSABUF(len: UInt32(eb.count), buf: eb.baseAddress)
                        let rc = withSockaddr(address) { sa, len in
                            t.lpWSPConnect(s, sa, len, &callerBuf, &calleeBuf, nil, nil, &err)
                        }
                        if rc == 0 { eb[Int(calleeBuf.len)] = 0 }
                        return rc
                    }
                }
                guard rc == 0 else { return (rc, err, "", "") }
                var got = [CChar](repeating: 0, count: 64)
                var n: UInt32 = 0
                var flags: UInt32 = 0
                _ = got.withUnsafeMutableBufferPointer { gb in
                    var buf = WSABUF(len: 63, buf: gb.baseAddress)
                    return t.lpWSPRecv(s, &buf, 1, &n, &flags, nil, nil, nil, &err)
                }
                var reply = Array("bye".utf8CString.dropLast())
                _ = reply.withUnsafeMutableBufferPointer { rb in
                    var buf = WSABUF(len: 3, buf: rb.baseAddress)
                    var sent: UInt32 = 0
                    return t.lpWSPSend(s, &buf, 1, &sent, 0, nil, nil, nil, &err)
                }
                return (rc, err, cString(callee),
                        String(decoding: got.prefix(Int(n)).map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
        }
        let accepted = try await listener.accept { request in
            text(request.callerData) == "from C" ? .accept(calleeData: bytes("hello C")) : .reject
        }
        try await accepted.socket.send(bytes("greeting"))
        #expect(text(try await accepted.socket.receive(maxCount: 16)) == "bye")
        let result = await client.value
        #expect(result.rc == 0 && result.err == 0)
        #expect(result.callee == "hello C")
        #expect(result.greeting == "greeting")
    }

    /// A Swift async client against a server written against the raw C table, with a C
    /// condition function, blocking in lpWSPAccept on a Dispatch thread.
    @Test func swiftAsyncClientAgainstCServer() async throws {
        let t = rawTable()
        defer { rawCleanup(t) }
        var err: Int32 = 0
        var info = WSAPROTOCOL_INFO()
        info.dwCatalogEntryId = DWORD(WSP_CATALOG_CDATA_IPV4)
        let l = t.lpWSPSocket(0, 0, 0, &info, 0, 0, &err)
        defer { _ = t.lpWSPCloseSocket(l, &err) }
        let bound = withSockaddr(.loopback(port: 0)) { sa, len in t.lpWSPBind(l, sa, len, &err) }
        #expect(bound == 0)
        #expect(t.lpWSPListen(l, 16, &err) == 0)
        var ss = sockaddr_storage()
        var len = Int32(MemoryLayout<sockaddr_storage>.size)
        var printed = [CChar](repeating: 0, count: 64)
        var printedLen = UInt32(printed.count)
        withUnsafeMutablePointer(to: &ss) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                _ = t.lpWSPGetSockName(l, sa, &len, &err)
                _ = t.lpWSPAddressToString(sa, UInt32(len), nil, &printed, &printedLen, &err)
            }
        }
        let address = try Address(cString(printed))
        // The server: two blocking accepts with the C condition function.
        let server = Task {
            await offPool { () -> [Int32] in
                var results: [Int32] = []
                for _ in 0..<2 {
                    var e: Int32 = 0
                    let s = t.lpWSPAccept(l, nil, nil, admitToken, 0, &e)
                    if s == ~SOCKET(0) { results.append(e) } else {
                        results.append(0)
                        _ = t.lpWSPCloseSocket(s, &e)
                    }
                }
                return results
            }
        }
        let provider = try Provider()
        let good = try await provider.connect(to: address, protocol: .tcpWithConnectData,
                                              callerData: bytes("token"))
        #expect(text(good.calleeData) == "welcome")
        await #expect(throws: WSPError.connectionRefused) {
            _ = try await provider.connect(to: address, protocol: .tcpWithConnectData,
                                           callerData: bytes("forged"))
        }
        #expect(await server.value == [0, WSAECONNREFUSED])
    }
}
}
