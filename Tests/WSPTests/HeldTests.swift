import CWSP
import Foundation
import Testing
import WSP

extension AllTests {
@Suite(.timeLimit(.minutes(1))) struct HeldTests {
    @Test func heldRequestIsAnsweredLaterAndLeavesTheQueue() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let address = try listener.localAddress
        let first = clientConnect(provider, address, bytes("first"))
        let held = try await listener.hold()
        #expect(held.callerData == bytes("first"))
        // The next accept presents the next request.
        let second = clientConnect(provider, address, bytes("second"))
        let other = try await listener.accept { request in
            .accept(calleeData: request.callerData ?? [])
        }
        _ = other
        #expect(try second.wait().get() == bytes("second"))
        let accepted = try held.accept(calleeData: bytes("later"))
        _ = accepted
        #expect(try await offPool { first.wait() }.get() == bytes("later"))
    }

    @Test func droppingAHeldRequestRejectsIt() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let client = clientConnect(provider, try listener.localAddress, [1])
        do {
            let held = try await listener.hold()
            _ = held.request
        } // dropped unanswered here
        #expect(throws: WSPError.connectionRefused) { try client.wait().get() }
        #expect(try listener.listenerStatistics.rejected == 1)
    }

    @Test func rejectCarriesAReason() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let client = clientConnect(provider, try listener.localAddress, [1])
        let held = try await listener.hold()
        try held.reject(reason: .backlogFull)
        #expect(throws: WSPError.connectionRefused) { try client.wait().get() }
    }

    @Test func asyncConditionSlowDecisionsDoNotDelayFastOnes() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let address = try listener.localAddress
        let slowClient = clientConnect(provider, address, bytes("slow"))
        let gate = AsyncGate()
        // The slow decision waits for the gate, which opens only after the fast client has
        // been accepted: a slow closure that delayed the line would never finish.
        async let slow: Void = {
            let accepted = try await listener.accept { request async in
                await gate.wait()
                return .accept(calleeData: request.callerData ?? [])
            }
            _ = accepted
        }()
        #expect(await eventually { (try? listener.listenerStatistics.holding) == 1 })
        let fastClient = clientConnect(provider, address, bytes("fast"))
        let fast = try await listener.accept { request async in
            .accept(calleeData: request.callerData ?? [])
        }
        _ = fast
        #expect(try await offPool { fastClient.wait() }.get() == bytes("fast"))
        await gate.open()
        try await slow
        #expect(try await offPool { slowClient.wait() }.get() == bytes("slow"))
    }

    @Test func serveRunsSlowDecisionsBesideFastOnes() async throws {
        let provider = try Provider()
        let presented = AsyncGate(), gate = AsyncGate()
        let address = Locked<Address?>(nil)
        let handled = Locked(0)
        // The listener lives in the serving task (a Socket is ~Copyable: it is not shared).
        let server = Task { () async throws -> Void in
            let listener = try asyncListener(provider)
            address.withLock { $0 = try? listener.localAddress }
            await presented.open()
            try await listener.serve(maxDecisions: 4) { request in
                // The slow decision waits for the gate, which opens only once the fast client
                // has its answer: if it delayed the fast one, neither would finish.
                if request.callerData == bytes("slow") { await gate.wait() }
                return .accept(calleeData: request.callerData ?? [])
            } handle: { accepted in
                let socket = accepted.socket // taken over, closed as it goes
                _ = socket.handle
                handled.withLock { $0 += 1 }
            }
        }
        await presented.wait()
        let listening = try #require(address.withLock { $0 })
        let slowClient = clientConnect(provider, listening, bytes("slow"))
        let fastClient = clientConnect(provider, listening, bytes("fast"))
        #expect(try await offPool { fastClient.wait() }.get() == bytes("fast"))
        await gate.open()
        #expect(try await offPool { slowClient.wait() }.get() == bytes("slow"))
        #expect(await eventually { handled.withLock { $0 } == 2 })
        server.cancel()
        _ = await server.result
    }

    @Test func asyncConditionRejectAndDefer() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let client = clientConnect(provider, try listener.localAddress, [2])
        await #expect(throws: WSPError.tryAgain) {
            _ = try await listener.accept { _ async in .defer }
        }
        await #expect(throws: WSPError.connectionRefused) {
            _ = try await listener.accept { _ async in .reject }
        }
        #expect(throws: WSPError.connectionRefused) { try client.wait().get() }
    }

    @Test func cancellingTheDecidingTaskRejects() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let client = clientConnect(provider, try listener.localAddress, [3])
        let started = AsyncGate()
        let task = Task { () async -> WSPError? in
            do throws(WSPError) {
                _ = try await listener.accept { _ async in
                await started.open()
                    try? await Task.sleep(for: .seconds(60)) // ends early when cancelled
                    return .accept()
                }
                return nil
            } catch {
                return error
            }
        }
        await started.wait()
        task.cancel()
        #expect(await task.value == WSPError.operationAborted)
        #expect(throws: WSPError.connectionRefused) { try client.wait().get() }
    }
}
}

/// A one-shot gate tasks can wait on.
actor AsyncGate {
    private var isOpen = false
    private var waiters: [CheckedContinuation<Void, Never>] = []
    func open() {
        isOpen = true
        for w in waiters { w.resume() }
        waiters = []
    }
    func wait() async {
        if isOpen { return }
        await withCheckedContinuation { waiters.append($0) }
    }
}
