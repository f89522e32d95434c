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

    // ---- the withdrawal notice --------------------------------------------------------------

    @Test func aClientWithdrawingWhileHeldIsNoticedAndTheAnswerSaysSo() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let address = try listener.localAddress
        // Cancelling an async connect closes its socket: the client withdraws.
        let client = Task { _ = try await provider.connect(to: address, callerData: [7]) }
        let held = try await listener.hold()
        let withdrawal = held.withdrawal
        #expect(withdrawal.end == nil)
        let watcher = Task { try await withdrawal.wait() }
        client.cancel()
        #expect(try await watcher.value == .withdrawn)
        #expect(withdrawal.end == .withdrawn)
        #expect(try listener.listenerStatistics.withdrawn == 1)
        var failure: WSPError? = nil
        do throws(WSPError) {
            _ = try held.accept(calleeData: [1])
        } catch {
            failure = error
        }
        #expect(failure == .withdrawn)
        #expect(failure?.code == WSAECONNRESET) // the provider's code, kept
        #expect(failure?.description.contains("withdrew") == true, "\(String(describing: failure))")
    }

    @Test func theNoticeOfAnAnsweredRequestSaysAnswered() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let client = clientConnect(provider, try listener.localAddress, [1])
        let held = try await listener.hold()
        let withdrawal = held.withdrawal
        let watcher = Task { try await withdrawal.wait() }
        try held.reject()
        #expect(try await watcher.value == .answered)
        #expect(try await withdrawal.wait() == .answered) // at once, afterwards too
        #expect(throws: WSPError.connectionRefused) { try client.wait().get() }
    }

    @Test func theHoldDeadlineRefusesTheClientAndTheNoticeSaysTimedOut() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        try listener.set(.holdDeadline, to: .milliseconds(100))
        #expect(try listener.option(.holdDeadline) == .milliseconds(100))
        let client = clientConnect(provider, try listener.localAddress, [1])
        let held = try await listener.hold()
        #expect(try await held.withdrawal.wait() == .timedOut)
        let refused = await offPool { client.wait() }
        #expect(refused.failure == .connectionRefused)
        #expect(refused.failure?.refusal == .holdTimeout)
        #expect(try listener.listenerStatistics.holdTimedOut == 1)
        do throws(WSPError) {
            try held.reject()
            Issue.record("an ended request was rejected")
        } catch {
            #expect(error == .timedOut)
        }
    }

    @Test func closingTheListenerEndsItsHeldRequests() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let client = clientConnect(provider, try listener.localAddress, [1])
        let held = try await listener.hold()
        let withdrawal = held.withdrawal
        let watcher = Task { try await withdrawal.wait() }
        try listener.close()
        #expect(try await watcher.value == .listenerClosed)
        #expect(throws: WSPError.connectionRefused) { try client.wait().get() }
        do throws(WSPError) {
            try held.release()
            Issue.record("a request of a closed listener was released")
        } catch {
            #expect(error == .interrupted)
        }
    }

    @Test func cancellingAWaitForTheNoticeLeavesTheRequestHeld() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let client = clientConnect(provider, try listener.localAddress, [1])
        let held = try await listener.hold()
        let withdrawal = held.withdrawal
        let waiting = Task { () async -> WSPError? in
            do throws(WSPError) {
                _ = try await withdrawal.wait()
                return nil
            } catch {
                return error
            }
        }
        waiting.cancel()
        #expect(await waiting.value == .operationAborted)
        #expect(withdrawal.end == nil)
        let accepted = try held.accept(calleeData: bytes("still here"))
        _ = accepted
        #expect(try await offPool { client.wait() }.get() == bytes("still here"))
        #expect(withdrawal.end == .answered)
    }

    @Test func anAsyncDecisionForAClientThatLeftThrowsWithdrawn() async throws {
        let provider = try Provider()
        let listener = try asyncListener(provider)
        let address = try listener.localAddress
        let client = Task { _ = try await provider.connect(to: address, callerData: [9]) }
        let presented = AsyncGate(), gate = AsyncGate()
        async let outcome: WSPError? = {
            do throws(WSPError) {
                _ = try await listener.accept { _ async in
                    await presented.open()
                    await gate.wait() // opened only after the client has gone
                    return .accept()
                }
                return nil
            } catch {
                return error
            }
        }()
        await presented.wait()
        client.cancel()
        #expect(await eventually { (try? listener.listenerStatistics.withdrawn) == 1 })
        await gate.open()
        #expect(await outcome == .withdrawn)
    }

    /// While `serve` waits for the next request the listener is selected for `FD_ACCEPT`,
    /// which an accepted socket would inherit: a socket so selected cannot be made blocking.
    @Test func aSocketAcceptedWhileTheNextRequestIsAwaitedCanBeMadeBlocking() async throws {
        let provider = try Provider()
        let presented = AsyncGate(), deciding = AsyncGate(), gate = AsyncGate()
        let address = Locked<Address?>(nil)
        let blocking = Locked<WSPError??>(nil)
        let server = Task { () async throws -> Void in
            let listener = try asyncListener(provider)
            address.withLock { $0 = try? listener.localAddress }
            await presented.open()
            try await listener.serve(maxDecisions: 4) { _ in
                await deciding.open()
                await gate.wait() // meanwhile the loop goes back to waiting for a request
                return .accept(calleeData: bytes("ok"))
            } handle: { accepted in
                let socket = accepted.socket
                let result: WSPError?
                do throws(WSPError) { try socket.setNonBlocking(false); result = nil } catch { result = error }
                blocking.withLock { $0 = .some(result) }
            }
        }
        await presented.wait()
        let client = clientConnect(provider, try #require(address.withLock { $0 }), [1])
        await deciding.wait()
        await gate.open()
        #expect(try await offPool { client.wait() }.get() == bytes("ok"))
        #expect(await eventually { blocking.withLock { $0 } != nil })
        #expect(blocking.withLock { $0 } == .some(nil), "setNonBlocking(false) failed")
        server.cancel()
        _ = await server.result
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

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
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
