import CWSP
import Foundation
import Testing
import WSP

extension AllTests {
@Suite(.timeLimit(.minutes(1))) struct AsyncTests {
    @Test func errorsAreTypedAndComparable() {
        let e: WSPError = WSPError(code: 10061)
        #expect(e == .connectionRefused)
        #expect(e != .timedOut)
        #expect(Set([e, .connectionRefused, .tryAgain]).count == 2)
        #expect(WSPError.operationAborted.name == "WSA_OPERATION_ABORTED")
        #expect(WSPError.tryAgain.code == 11002)
        #expect(String(describing: e).contains("WSAECONNREFUSED"))
        func throwsTyped() throws(WSPError) { throw .fault }
        do throws(WSPError) { try throwsTyped() } catch { #expect(error == .fault) } // a WSPError
    }

    @Test func closedHandleIsGoneFromTheProvider() throws {
        let provider = try Provider()
        let table = rawTable()
        defer { rawCleanup(table) }
        func sockName(_ h: SOCKET) -> Int32 {
            var ss = sockaddr_storage()
            var len = Int32(MemoryLayout<sockaddr_storage>.size)
            var err: Int32 = 0
            let rc = withUnsafeMutablePointer(to: &ss) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    table.lpWSPGetSockName(h, $0, &len, &err)
                }
            }
            return rc == 0 ? 0 : err
        }
        // close() consumes the socket (using it afterwards does not compile) …
        let s = try provider.listen(on: .loopback(port: 0), protocol: .tcpWithConnectData)
        let h1 = s.handle
        #expect(sockName(h1) == 0)
        try s.close()
        #expect(sockName(h1) == WSAENOTSOCK)
        // … and leaving the scope closes it too.
        var h2: SOCKET = 0
        do {
            let t = try provider.socket(family: .ipv4, protocol: .tcp)
            h2 = t.handle
        }
        #expect(sockName(h2) == WSAENOTSOCK)
    }

    @Test func asyncAcceptAndConnectCarryDataBothWays() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let address = try listener.localAddress
        var askedQoS = QoS()
        askedQoS.sending.tokenRate = 1000
        askedQoS.sending.serviceType = UInt32(SERVICETYPE_GUARANTEED)
        let asked = askedQoS
        async let client: (String?, QoS?, String?) = {
            let conn = try await provider.connect(to: address, protocol: .tcpWithConnectData,
                                                  callerData: bytes("token"), qos: asked,
                                                  timeout: .seconds(10))
            try await conn.socket.send(bytes("ping"))
            let reply = try await conn.socket.receive(maxCount: 100)
            return (text(conn.calleeData), conn.negotiatedQoS, text(reply))
        }()
        let seen = Captured<ConnectionRequest?>(nil)
        let accepted = try await listener.accept { request in
            seen.value = request
            var agreed = request.callerQoS ?? QoS()
            agreed.sending.tokenRate = 500
            return .accept(calleeData: bytes("welcome"), qos: agreed)
        }
        #expect(text(seen.value?.callerData) == "token")
        #expect(seen.value?.callerQoS == asked)
        #expect(seen.value?.localAddress == address)
        #expect(seen.value?.callerAddress == accepted.peer)
        #expect(text(try await accepted.socket.receive(maxCount: 100)) == "ping")
        try await accepted.socket.send(bytes("pong"))
        let (callee, qos, reply) = try await client
        #expect(callee == "welcome")
        #expect(qos?.sending.tokenRate == 500)
        #expect(qos?.sending.serviceType == UInt32(SERVICETYPE_GUARANTEED))
        #expect(reply == "pong")
    }

    // A connect selects its socket for FD_CONNECT alone; the first wait for data selects the
    // rest, and must still see what happened in between.
    @Test func firstReceiveAfterAsyncConnectWaitsForDataAndThenTheClose() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let address = try listener.localAddress
        async let client: (String?, Bool) = {
            let conn = try await provider.connect(to: address, protocol: .tcpWithConnectData,
                                                  callerData: bytes("x"), timeout: .seconds(10))
            let first = try await conn.socket.receive(maxCount: 100) // waits for the data
            try await Task.sleep(for: .milliseconds(100)) // the close arrives meanwhile
            let second = try await conn.socket.receive(maxCount: 100)
            return (text(first), second.isEmpty)
        }()
        do {
            let accepted = try await listener.accept()
            try await Task.sleep(for: .milliseconds(100))
            try await accepted.socket.send(bytes("late"))
        } // the accepted socket closes here
        let (first, closed) = try await client
        #expect(first == "late")
        #expect(closed)
    }

    @Test func rejectIsConnectionRefusedAtTheAsyncClient() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let address = try listener.localAddress
        async let client: WSPError? = {
            do throws(WSPError) {
                _ = try await provider.connect(to: address, protocol: .tcpWithConnectData,
                                               callerData: [1])
                return nil
            } catch { return error }
        }()
        await #expect(throws: WSPError.connectionRefused) {
            _ = try await listener.accept { _ in .reject }
        }
        #expect(await client == .connectionRefused)
        #expect(try listener.listenerStatistics.rejected == 1)
    }

    @Test func deferredRequestComesBackToTheNextAsyncAccept() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let address = try listener.localAddress
        async let client = provider.connect(to: address, protocol: .tcpWithConnectData,
                                            callerData: [7]).calleeData
        let first = Captured<Address?>(nil)
        await #expect(throws: WSPError.tryAgain) {
            _ = try await listener.accept { request in
                first.value = request.callerAddress
                return .defer
            }
        }
        let second = Captured<Address?>(nil)
        let accepted = try await listener.accept { request in
            second.value = request.callerAddress
            return .accept(calleeData: [8])
        }
        #expect(first.value != nil && first.value == second.value && accepted.peer == first.value)
        #expect(try await client == [8])
        let stats = try listener.listenerStatistics
        #expect(stats.deferred == 1 && stats.accepted == 1)
    }

    @Test func calleeDataOverCapacityIsAFaultAndKeepsTheRequest() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        try listener.setOption(level: SOL_WSP, name: WSP_MAX_CALLEE_DATA, value: 4)
        let address = try listener.localAddress
        async let client = provider.connect(to: address, protocol: .tcpWithConnectData,
                                            callerData: [1]).calleeData
        await #expect(throws: WSPError.fault) {
            _ = try await listener.accept { _ in .accept(calleeData: [1, 2, 3, 4, 5]) }
        }
        _ = try await listener.accept { _ in .accept(calleeData: [1, 2, 3, 4]) }
        #expect(try await client == [1, 2, 3, 4])
    }

    @Test func cancellingAPendingConnectWithdrawsTheRequest() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let address = try listener.localAddress
        let client = Task { () async throws(WSPError) -> [UInt8] in
            try await provider.connect(to: address, protocol: .tcpWithConnectData,
                                       callerData: bytes("impatient")).calleeData
        }
        #expect(try await eventually { try listener.listenerStatistics.queued == 1 })
        client.cancel()
        await #expect(throws: WSPError.operationAborted) { try await client.value }
        #expect(try await eventually { try listener.listenerStatistics.withdrawn == 1 })
        // The condition function never sees it.
        try listener.setNonBlocking(true)
        let shown = Captured<Bool>(false)
        #expect(throws: WSPError.wouldBlock) {
            _ = try listener.accept { _ in shown.value = true; return .accept() }
        }
        #expect(!shown.value)
    }

    // Cancelled, a waiting accept ends with operationAborted instead of waiting on: an accept
    // that did not would hang, which the time limit turns into a failure (how long "promptly"
    // takes is the machine's business, not the test's). Cancelled before it waits, the accept
    // ends the same way, so the order of the two does not change the outcome; the pause only
    // makes the waiting case the likely one (nothing in the API tells that an accept waits).
    @Test(.timeLimit(.minutes(1))) func cancellingAPendingAcceptReturnsPromptly() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let core = Task { () async throws(WSPError) -> Address in
            try await listener.accept().peer
        }
        try await Task.sleep(for: .milliseconds(50))
        core.cancel()
        await #expect(throws: WSPError.operationAborted) { _ = try await core.value }
        // The listener still works afterwards.
        let address = try listener.localAddress
        async let client = provider.connect(to: address, protocol: .tcpWithConnectData,
                                            callerData: [3]).calleeData
        _ = try await listener.accept { _ in .accept(calleeData: [4]) }
        #expect(try await client == [4])
    }

    // Nobody accepts, and the default notice interval (1 s) is longer than the time-out: the
    // connect times out. One that never did would hang into the time limit.
    @Test(.timeLimit(.minutes(1))) func connectTimesOutWhileTheServerDefers() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let address = try listener.localAddress
        await #expect(throws: WSPError.timedOut) {
            _ = try await provider.connect(to: address, protocol: .tcpWithConnectData,
                                           callerData: [1], timeout: .milliseconds(300))
        }
        _ = listener
    }

    @Test func ipv6() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider, ipv6: true)
        let address = try listener.localAddress
        #expect(address.family == .ipv6)
        #expect(address.description == "[::1]:\(address.port)")
        async let client = provider.connect(to: address, protocol: .tcpWithConnectData,
                                            callerData: bytes("six")).calleeData
        let caller = Captured<Address?>(nil)
        let accepted = try await listener.accept { request in
            caller.value = request.callerAddress
            return .accept(calleeData: request.callerData ?? [])
        }
        #expect(caller.value?.family == .ipv6 && accepted.peer == caller.value)
        #expect(text(try await client) == "six")
    }

    @Test func addressesParseAndPrintThroughTheProvider() throws {
        #expect(try Address("127.0.0.1:7000").description == "127.0.0.1:7000")
        #expect(try Address("127.0.0.1").port == 0)
        let v6 = try Address("[::1]:80")
        #expect(v6.family == .ipv6 && v6.port == 80 && v6.description == "[::1]:80")
        #expect(try Address("::1") == Address.loopbackIPv6(port: 0))
        #expect(try Address("[2001:db8::5]:443").description == "[2001:db8::5]:443")
        #expect(Address.loopback(port: 9).description == "127.0.0.1:9")
        #expect(throws: WSPError.invalidArgument) { try Address("1.2.3.4:99999") }
        #expect(throws: WSPError.self) { try Address("not an address") }
    }

    @Test func requestsSequenceShowsDefersAndDecides() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let address = try listener.localAddress
        async let good = provider.connect(to: address, protocol: .tcpWithConnectData,
                                          callerData: bytes("good")).calleeData
        var looks: [String: Int] = [:]
        var decided = 0
        var refused: WSPError? = nil
        var bad: Task<WSPError?, Never>? = nil
        for try await request in listener.requests {
            let name = text(request.callerData) ?? ""
            looks[name, default: 0] += 1
            if name == "good" && looks[name] == 1 {
                // Leave it undecided: it comes back as the next element.
                continue
            }
            if name == "good" {
                _ = try request.accept(calleeData: bytes("hi"))
                decided += 1
                bad = Task {
                    do throws(WSPError) {
                        _ = try await provider.connect(to: address, protocol: .tcpWithConnectData,
                                                       callerData: bytes("bad"))
                        return nil
                    } catch { return error }
                }
            } else {
                try request.reject()
                decided += 1
                refused = await bad?.value
            }
            if decided == 2 { break }
        }
        #expect(looks == ["good": 2, "bad": 1])
        #expect(text(try await good) == "hi")
        #expect(refused == .connectionRefused)
    }

    /// Sixteen accepts wait at once — far more than the cooperative pool has threads here —
    /// and the clients that satisfy them still run: no waiting call holds a thread.
    @Test func pendingAsyncCallsDoNotHoldThreads() async throws {
        let provider = try Provider()
        let n = 16
        var addresses: [Address] = []
        var servers: [Task<[UInt8], any Error>] = []
        for _ in 0..<n {
            let listener = try asyncListener(provider)
            addresses.append(try listener.localAddress)
            servers.append(Task { [listener = consume listener] in
                let accepted = try await listener.accept { request in
                    .accept(calleeData: request.callerData ?? [])
                }
                return try await accepted.socket.receive(maxCount: 8)
            })
        }
        try await Task.sleep(for: .milliseconds(50))
        for (i, address) in addresses.enumerated() {
            let conn = try await provider.connect(to: address, protocol: .tcpWithConnectData,
                                                  callerData: [UInt8(i)])
            #expect(conn.calleeData == [UInt8(i)])
            try await conn.socket.send([UInt8(i)])
        }
        for (i, server) in servers.enumerated() {
            #expect(try await server.value == [UInt8(i)])
        }
    }

    @Test func requestsSequenceEndsWhenTheListenerCloses() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let requests = listener.requests
        let iteration = Task { () async throws(WSPError) -> Int in
            var n = 0
            for try await _ in requests { n += 1 }
            return n
        }
        try await Task.sleep(for: .milliseconds(50))
        try listener.close()
        #expect(try await iteration.value == 0)
    }
}
}
