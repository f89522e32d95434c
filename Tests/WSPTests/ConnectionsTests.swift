import Foundation
import Testing
import WSP

/// A connect-data client that reports its outcome instead of throwing.
private func attempt(_ provider: Provider, _ address: Address, _ data: String,
                     timeout: Duration? = nil) async -> Result<[UInt8], WSPError> {
    do throws(WSPError) {
        let conn = try await provider.connect(to: address, callerData: bytes(data), timeout: timeout)
        let greeting = try await conn.socket.receive(maxCount: 16)
        return .success(conn.calleeData + greeting)
    } catch {
        return .failure(error)
    }
}

extension AllTests {
@Suite(.timeLimit(.minutes(1))) struct ConnectionsTests {
    /// One loop serves a rejected client, a client deferred until it gives up, a good client
    /// and a client deferred once, and is still there for the next: no outcome ends it.
    @Test func theLoopSurvivesEveryOutcome() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let address = try listener.localAddress
        let outcomes = Captured<[AcceptOutcome]>([])
        let deferredOnce = Captured(false)
        let connections = listener.connections(
            retryDeferredAfter: .milliseconds(20),
            outcomes: { outcome in outcomes.value.append(outcome) },
            condition: { request in
                switch text(request.callerData) {
                case "no": return .reject
                case "never": return .defer
                case "later":
                    if deferredOnce.value { return .accept(calleeData: bytes("late")) }
                    deferredOnce.value = true
                    return .defer
                default: return .accept(calleeData: bytes("ok"))
                }
            })
        let server = Task { () async throws -> [String] in
            var served: [String] = []
            for try await connection in connections {
                try await connection.send(bytes("!"))
                served.append(text(connection.request?.callerData) ?? "?")
                if served.count == 3 { break }
            }
            return served
        }
        let refused = await attempt(provider, address, "no")
        let impatient = await attempt(provider, address, "never", timeout: .milliseconds(300))
        let good = await attempt(provider, address, "yes")
        let late = await attempt(provider, address, "later")
        let next = await attempt(provider, address, "again")
        #expect(refused.error == .connectionRefused)
        #expect(refused.error?.refusal == .rejected)
        #expect(impatient.error == .timedOut)
        #expect(text(try good.get()) == "ok!")
        #expect(text(try late.get()) == "late!")
        #expect(text(try next.get()) == "ok!")
        #expect(try await server.value == ["yes", "later", "again"])

        let seen = outcomes.value
        #expect(seen.filter { if case .rejected = $0 { true } else { false } }.count == 1)
        #expect(seen.filter { if case .accepted = $0 { true } else { false } }.count == 3)
        // Deferrals are reported once per request, however often it is shown again.
        #expect(seen.filter { if case .deferred = $0 { true } else { false } }.count == 2)
        // The impatient client is counted once: expired (its stated patience ran out while
        // deferred) or withdrawn (its close arrived first); and reported once.
        let stats = try listener.listenerStatistics
        #expect(stats.withdrawn + stats.expired == 1)
        func gaveUp(_ o: AcceptOutcome) -> Bool {
            switch o {
            case .withdrawn, .dropped(_, .expired): true
            default: false
            }
        }
        #expect(await eventually { outcomes.value.filter(gaveUp).count == 1 }, "\(outcomes.value)")
    }

    /// Callee data the client cannot take ends that request only: its client is told why,
    /// the loop reports it and serves the next client at once.
    @Test func anAnswerTooLongForOneClientEndsOnlyThatRequest() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let address = try listener.localAddress
        let outcomes = Captured<[AcceptOutcome]>([])
        let connections = listener.connections(
            outcomes: { outcome in outcomes.value.append(outcome) },
            condition: { _ in .accept(calleeData: bytes("seven!!")) })
        let server = Task { () async throws -> Int in
            for try await connection in connections { return Int(connection.peer.port) }
            return 0
        }
        let small = Background { () -> Result<[UInt8], WSPError> in
            Result { () throws(WSPError) -> [UInt8] in
                try provider.connect(to: address, callerData: bytes("s"), calleeCapacity: 3).calleeData
            }
        }
        let smallResult = await offPool { small.wait() }
        #expect(smallResult.error == .fault)
        #expect(smallResult.error?.refusal == .calleeDataTooLong)
        let good = await attempt(provider, address, "g")
        #expect(good.error == nil || good.error == .connectionReset) // accepted (then closed)
        #expect(try await server.value != 0)
        #expect(outcomes.value.contains { if case .failed(_, .fault) = $0 { true } else { false } })
        #expect(try listener.listenerStatistics.undeliverable == 1)
    }

    /// Requests the provider refuses on the listener's behalf reach the client with a reason
    /// and the loop's outcomes as drops.
    @Test func dropsCarryTheirReasonToBothSides() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let address = try listener.localAddress
        let outcomes = Captured<[AcceptOutcome]>([])
        let connections = listener.connections(outcomes: { outcome in outcomes.value.append(outcome) })
        let server = Task { for try await _ in connections {} }
        defer { server.cancel() }
        let client = try provider.socket(family: .ipv4, protocol: .tcpWithConnectData)
        try client.set(.maxCallerData, to: 2000)
        let long = [UInt8](repeating: 7, count: 2000) // the listener takes 1024 by default
        let error = await offPool { () -> WSPError? in
            do throws(WSPError) {
                _ = try client.connect(to: address, callerData: long)
                return nil
            } catch { return error }
        }
        #expect(error == .connectionRefused)
        #expect(error?.refusal == .dataTooLong)
        #expect(await eventually {
            outcomes.value.contains { if case .dropped(_, .dataTooLong) = $0 { true } else { false } }
        }, "\(outcomes.value)")
        #expect(try listener.listenerStatistics.tooLong == 1)
    }

    /// Two loops on one listener: while one waits for a request the listener is selected for
    /// `FD_ACCEPT`, and a socket the other accepts meanwhile would inherit that selection (a
    /// selected socket cannot be made blocking). Every accepted socket starts selected for
    /// nothing. (Which loop takes a connection is up to the tasks; with two loops waiting, one
    /// nearly always takes it while the other waits: without the fix every round fails.)
    @Test func aConnectionAcceptedWhileAnotherLoopWaitsCanBeMadeBlocking() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let address = try listener.localAddress
        let connections = listener.connections()
        let failures = Captured<[WSPError]>([])
        let served = Captured(0)
        let loops = (0..<2).map { _ in
            Task { () async throws in
                for try await connection in connections {
                    let socket = try connection.takeSocket()
                    do throws(WSPError) { try socket.setNonBlocking(false) } catch {
                        failures.value.append(error)
                    }
                    served.value += 1
                }
            }
        }
        let rounds = 20
        for _ in 0..<rounds {
            _ = try await provider.connect(to: address, callerData: bytes("x"))
        }
        #expect(await eventually(within: 30) { served.value == rounds })
        try listener.close()
        for loop in loops { _ = await loop.result }
        #expect(failures.value == [], "accepted sockets that could not be made blocking")
    }

    @Test func closingTheListenerEndsTheLoop() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let connections = listener.connections()
        let server = Task { () async throws -> Int in
            var n = 0
            for try await _ in connections { n += 1 }
            return n // the loop ended without an error
        }
        let address = try listener.localAddress
        _ = try await provider.connect(to: address, callerData: bytes("x"))
        #expect(await eventually { (try? listener.listenerStatistics.accepted) == 1 })
        try listener.close()
        #expect(try await server.value == 1)
    }

    @Test func cancellingTheLoopThrowsOperationAborted() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let connections = listener.connections()
        let server = Task { () async throws in
            for try await _ in connections {}
        }
        server.cancel()
        await #expect(throws: WSPError.operationAborted) { try await server.value }
    }

    /// A loop pausing between looks at a deferred request ends at once when cancelled.
    @Test func cancellingTheLoopWhileItPausesOnADeferral() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let address = try listener.localAddress
        let shown = Captured(0)
        let connections = listener.connections(retryDeferredAfter: .seconds(3600), condition: { _ in
            shown.value += 1
            return .defer
        })
        let server = Task { () async throws in for try await _ in connections {} }
        let client = Task { await attempt(provider, address, "waiting") }
        #expect(await eventually { shown.value == 1 })
        server.cancel() // mid-pause: an hour is never waited out
        await #expect(throws: WSPError.operationAborted) { try await server.value }
        client.cancel()
        #expect(await client.value.error == .operationAborted)
    }

    /// The README's example, with a port of the system's choosing.
    @Test func theReadmeExampleDoesWhatItSays() async throws {
        let provider = try Provider()
        let listener = try provider.listen(on: .loopback(port: 0), protocol: .tcpWithConnectData)
        let token = Array("token".utf8)
        let connections = listener.connections(condition: { request in
            request.callerData == token ? .accept(calleeData: Array("welcome".utf8)) : .reject
        })
        let server = Task {
            for try await connection in connections {
                Task { try await connection.send(Array("hi\n".utf8)) }
            }
        }
        defer { server.cancel() }
        let address = try listener.localAddress
        let conn = try await provider.connect(to: address, callerData: token, timeout: .seconds(5))
        #expect(String(decoding: conn.calleeData, as: UTF8.self) == "welcome")
        #expect(text(try await conn.socket.receive(maxCount: 16)) == "hi\n")
        do throws(WSPError) {
            let refused = try await provider.connect(to: address, callerData: Array("nope".utf8))
            Issue.record("a wrong token was accepted: \(refused.calleeData)")
        } catch {
            #expect(error == .connectionRefused)
        }
    }

    @Test func requestsTellTheCalleeCapacity() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let address = try listener.localAddress
        let client = Background { () -> Result<[UInt8], WSPError> in
            Result { () throws(WSPError) -> [UInt8] in
                try provider.connect(to: address, callerData: bytes("c"), calleeCapacity: 3).calleeData
            }
        }
        let capacity = Captured(-1)
        _ = try await listener.accept { request in
            capacity.value = request.calleeCapacity
            return .accept(calleeData: bytes("abc"))
        }
        #expect(capacity.value == 3)
        #expect(try await offPool { client.wait() }.get() == bytes("abc"))
    }
}
}

extension Result {
    var error: Failure? {
        if case .failure(let e) = self { return e }
        return nil
    }
}
