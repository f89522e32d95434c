import Testing
import WSP

// The getting-started article's server loops, run (scripts/check-doc-snippets compiles the
// article itself; these are its code, so that it also does what the prose says).

private let token = Array("token".utf8)

// "One accept at a time", as the article has it.
private func acceptOne(_ listener: borrowing Socket) async throws {
    do throws(WSPError) {
        let accepted = try await listener.accept { request in
            request.callerData == token ? .accept(calleeData: Array("welcome".utf8)) : .reject
        }
        let socket = accepted.socket              // take the connection out …
        Task { [socket = consume socket] in       // … and move it into its own task
            try await socket.send(Array("hello".utf8))
            try socket.close()                    // close() works on a captured socket
        }
    } catch .connectionRefused {
        return                                    // rejected: the caller decides what next
    } catch .tryAgain {
        return                                    // deferred: it stays first in line
    } catch {
        throw error                               // the listener itself failed
    }
}

private func acceptLoop(_ listener: borrowing Socket, rounds: Int) async throws {
    for _ in 0..<rounds { try await acceptOne(listener) }
}

private func requestLoop(_ listener: borrowing Socket, rounds: Int) async throws {
    var n = 0
    for try await request in listener.requests {
        if request.callerData == token && request.calleeCapacity >= 7 {
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

// "The server's loop", as the article has it (outcomes collected instead of printed).
@Sendable private func isBusy() -> Bool { false }   // your own load signal

private func serverLoop(_ listener: borrowing Socket, outcomes seen: Captured<[AcceptOutcome]>)
    -> Task<Void, any Error>
{
    let connections = listener.connections(
        outcomes: { outcome in seen.value.append(outcome) },
        condition: { request in
            guard request.callerData == token else { return .reject }
            if isBusy() { return .defer }          // shown again a moment later
            return .accept(calleeData: Array("welcome".utf8))
        })
    return Task {
        for try await connection in connections {
            Task {                                 // each connection in a task of its own
                try await connection.send(Array("hello".utf8))
                try connection.close()
            }
        }
    }
}

extension AllTests {
@Suite(.timeLimit(.minutes(1))) struct DocSnippetTests {
    @Test func gettingStartedServerLoopWorks() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let address = try listener.localAddress
        let seen = Captured<[AcceptOutcome]>([])
        let server = serverLoop(listener, outcomes: seen)
        defer { server.cancel() }
        for round in 0..<2 {
            let conn = try await provider.connect(to: address, callerData: token)
            #expect(conn.calleeData == Array("welcome".utf8))
            #expect(try await conn.socket.receive(maxCount: 16) == Array("hello".utf8))
            do throws(WSPError) {
                let refused = try await provider.connect(to: address, callerData: bytes("nope"))
                Issue.record("round \(round): accepted \(refused.calleeData)")
            } catch {
                #expect(error == .connectionRefused && error.refusal == .rejected)
            }
        }
        #expect(seen.value.filter { if case .accepted = $0 { true } else { false } }.count == 2)
        #expect(seen.value.filter { if case .rejected = $0 { true } else { false } }.count == 2)
    }

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
                try await acceptLoop(listener, rounds: 2)
            }
            let (callee, greeting) = try await good
            #expect(callee == "welcome")
            #expect(greeting > 0)
            #expect(await bad == .connectionRefused)
        }
    }
}
}
