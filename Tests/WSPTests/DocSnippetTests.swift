import Testing
import WSP

// The getting-started article's server loops, kept compiling (and run once each).

private func acceptLoop(_ listener: borrowing Socket, busy: Bool, rounds: Int) async throws {
    let token = Array("token".utf8)
    for _ in 0..<rounds {
        do throws(WSPError) {
            let accepted = try await listener.accept { request in
                guard request.callerData == token else { return .reject }
                return .accept(calleeData: Array("welcome".utf8))
            }
            let socket = accepted.socket
            Task { [socket = consume socket] in
                try await socket.send(Array("hello".utf8))
            }
        } catch .connectionRefused {
            continue
        } catch {
            throw error
        }
    }
}

private func requestLoop(_ listener: borrowing Socket, rounds: Int) async throws {
    let token = Array("token".utf8)
    var n = 0
    for try await request in listener.requests {
        if request.callerData == token {
            let accepted = try request.accept(calleeData: Array("welcome".utf8))
            let socket = accepted.socket
            Task { [socket = consume socket] in try await socket.send(Array("hi".utf8)) }
        } else {
            try request.reject()
        }
        n += 1
        if n == rounds { break }
    }
}

extension AllTests {
@Suite(.timeLimit(.minutes(1))) struct DocSnippetTests {
    @Test func gettingStartedLoopsWork() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let address = try listener.localAddress
        for useRequests in [false, true] {
            async let good: (String?, Int) = {
                let conn = try await provider.connect(to: address, protocol: .tcpWithConnectData,
                                                      callerData: bytes("token"))
                return (text(conn.calleeData), try await conn.socket.receive(maxCount: 16).count)
            }()
            async let bad: WSPError? = {
                do throws(WSPError) {
                    _ = try await provider.connect(to: address, protocol: .tcpWithConnectData,
                                                   callerData: bytes("nope"))
                    return nil
                } catch { return error }
            }()
            if useRequests {
                try await requestLoop(listener, rounds: 2)
            } else {
                try await acceptLoop(listener, busy: false, rounds: 2)
            }
            let (callee, greeting) = try await good
            #expect(callee == "welcome")
            #expect(greeting > 0)
            #expect(await bad == .connectionRefused)
        }
    }
}
}
