import Glibc
import WSP

// `listen --check CMD` and `--defer-when-busy`: every request is held (``Socket/hold()``): it
// leaves the listener's queue and its client keeps waiting, kept alive by the provider's
// pending notices, while the admission command runs or until a connection ends. No client
// waits behind another's decision, nothing polls, and a client that gives up (or outlasts
// the hold deadline) is noticed at once through the request's withdrawal notice.

/// A held request and what is being done with it, shared by the tasks and threads that may
/// answer it. The rule that keeps every request answered once and logged once: **whoever
/// takes the request out (``take()``) answers it and logs how it ended.**
final class HeldSlot: @unchecked Sendable {
    // @unchecked: `held` and `phase` are touched only under `mutex`.
    let request: ConnectionRequest
    let withdrawal: Withdrawal
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var held: HeldRequest?
    private var phase = Phase.deciding

    enum Phase {
        case deciding
        case checking(AdmissionCheck)
        /// Waiting for a connection to end (--defer-when-busy), since `since`.
        case parked(calleeData: [UInt8], since: Double)
    }

    init(_ held: consuming HeldRequest) {
        request = held.request
        withdrawal = held.withdrawal
        self.held = consume held
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        // A request still inside is rejected as the HeldRequest goes (its deinit).
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    private func locked<R: ~Copyable>(_ body: () -> R) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    /// The request, to answer it; nil when someone else took it.
    func take() -> HeldRequest? { locked { held.take() } }

    func enter(_ phase: Phase) { locked { self.phase = phase } }

    /// When parked: its callee data and since when.
    var parked: (calleeData: [UInt8], since: Double)? {
        locked {
            if case .parked(let data, let since) = phase { return (data, since) }
            return nil
        }
    }

    /// The request ended without an answer: a check running for it is killed (its thread
    /// then answers and logs); otherwise the request is taken, to log its end.
    func ended() -> HeldRequest? {
        locked {
            if case .checking(let check) = phase {
                check.kill()
                return nil
            }
            return held.take()
        }
    }
}

extension Server {
    /// The accept loop with holds: each request is held, screened by the rules, then checked
    /// (--check) and accepted when a connection may start (else held until one ends, with
    /// --defer-when-busy, or refused as busy).
    func runHolding(_ listener: consuming Socket, protocolName: String) async throws(WSPError) {
        if let holdDeadline {
            try listener.set(.holdDeadline,
                             to: holdDeadline == 0 ? nil : .milliseconds(Int64((holdDeadline * 1000).rounded(.up))))
        }
        try? listener.onDrop { [self] caller, reason in logDrop(caller, reason) }
        let loop = Task(executorPreference: LoopExecutor.shared) { [self, listener = consume listener] in
            var failure: WSPError? = nil
            do throws(WSPError) {
                while true {
                    if check != nil { try await roomForCheck() }
                    admit(try await listener.hold(), protocolName: protocolName)
                }
            } catch .interrupted, .notSocket {
                // the listener was closed
            } catch {
                if error != .operationAborted { failure = error }
            }
            let stats = try? listener.listenerStatistics
            logClosing(waiting: (stats?.queued ?? 0) + (stats?.holding ?? 0))
            try? listener.close()
            // The close ended every held request: their checks stop now, not when the
            // notices arrive (the process may be about to exit).
            for check in state.withLock({ $0.checks }) { check.kill() }
            if let failure { throw failure }
        }
        let result = await waitForLoop(loop)
        if case .failure(let error as WSPError) = result, error != .operationAborted { throw error }
    }

    /// Waits until fewer than --max-checks checks run.
    private func roomForCheck() async throws(WSPError) {
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    // Checked under the lock the cancellation handler takes.
                    if s.checks.count < maxChecks || Task.isCancelled { return true }
                    s.roomWaiter = c
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            state.withLock { s in
                defer { s.roomWaiter = nil }
                return s.roomWaiter
            }?.resume()
        }
        if Task.isCancelled { throw .operationAborted }
    }

    /// Decides what to do with a request just held. On the loop's task; never waits.
    private func admit(_ held: consuming HeldRequest, protocolName: String) {
        let request = held.request
        if let refused = rules.screen(request) {
            refuse(HeldSlot(held), why: refused.reason, while: "held")
            return
        }
        if !rules.deferWhenBusy, let busy = rules.busy(inService: state.withLock(load)) {
            refuse(HeldSlot(held), why: busy, while: "held") // no check for a request refused anyway
            return
        }
        let slot = HeldSlot(held)
        watch(slot)
        if let check {
            startCheck(slot, check, protocolName: protocolName)
        } else {
            settle(slot, calleeData: rules.calleeData, what: "--callee-data",
                   why: "passed the admission rules", while: "held")
        }
    }

    /// How many connections count as in service: without --keep-open the one connection
    /// keeps the server busy until it ends.
    private func load(_ s: inout State) -> Int {
        keepOpen ? s.inService : max(s.inService, s.served)
    }

    /// Logs the end of `slot`'s request when it ends unanswered (withdrawn, timed out), and
    /// stops its check.
    private func watch(_ slot: HeldSlot) {
        Task(executorPreference: LoopExecutor.shared) { [self] in
            guard let end = try? await slot.withdrawal.wait(), let error = end.error,
                  let held = slot.ended()
            else { return } // answered, or its check's thread answers
            _ = consume held // it has ended: dropping it calls nothing
            let parked = slot.parked
            state.withLock { $0.parked.removeAll { $0 === slot } }
            logEnded(slot.request, error,
                     while: parked == nil ? "held" : "held, waiting for a connection to end",
                     waited: waited(since: parked?.since))
        }
    }

    /// Runs --check for `slot` on a thread of its own, then answers by its outcome.
    private func startCheck(_ slot: HeldSlot, _ command: String, protocolName: String) {
        let request = slot.request
        let check: AdmissionCheck
        do {
            check = try AdmissionCheck(
                command: command,
                environment: AdmissionCheck.environment(for: request, protocolName: protocolName))
        } catch {
            refuse(slot, why: "the check could not be started: \(error.detail ?? error.meaning)",
                   while: "held")
            return
        }
        state.withLock { $0.checks.append(check) }
        slot.enter(.checking(check))
        log.event("check", caller: request.callerAddress.description,
                  reason: "held while the check runs", fields: dataField(request))
        // Plain TCP has no callee data: the output is not kept.
        let plain = protocolName == ProtocolName.tcp.rawValue
        let capacity = plain ? 0 : request.calleeCapacity
        Thread.detach { [self] in
            let (status, output, length) = check.finish(keeping: capacity)
            slot.enter(.deciding)
            let room = state.withLock { s in
                s.checks.removeAll { $0 === check }
                defer { s.roomWaiter = nil }
                return s.roomWaiter
            }
            room?.resume()
            let context = check.wasKilled ? "its check ran (the check was killed)" : "its check ran"
            if status != 0 {
                refuse(slot, why: "the check exited with status \(status)", while: context)
            } else if !plain && length > capacity {
                refuse(slot, .calleeDataTooLong,
                       why: "the check printed \(length) bytes, this client takes at most \(capacity)",
                       while: context)
            } else {
                settle(slot, calleeData: plain ? [] : output, what: "the check's output",
                       why: "passed the admission rules and the check", while: context)
            }
        }
    }

    /// Accepts `slot`'s request when a connection may start; else holds it until one ends
    /// (--defer-when-busy) or refuses it as busy.
    private func settle(_ slot: HeldSlot, calleeData: [UInt8], what: String, why: String,
                        while context: String) {
        if let tooLong = AdmissionRules.tooLong(calleeData, for: slot.request, what: what) {
            refuse(slot, .calleeDataTooLong, why: tooLong, while: context)
            return
        }
        enum Next { case accept, park(String), busy(String) }
        let next = state.withLock { s -> Next in
            guard let busy = rules.busy(inService: load(&s)) else {
                s.inService += 1 // its place, kept while the answer goes out
                s.served += 1
                return .accept
            }
            guard rules.deferWhenBusy else { return .busy(busy) }
            slot.enter(.parked(calleeData: calleeData, since: now()))
            s.parked.append(slot)
            return .park(busy)
        }
        switch next {
        case .accept:
            acceptReserved(slot, calleeData: calleeData, why: why, while: context, waited: [])
        case .busy(let busy):
            refuse(slot, why: busy, while: context)
        case .park(let busy):
            log.event("hold", caller: slot.request.callerAddress.description,
                      reason: "\(busy), --defer-when-busy: held until a connection ends",
                      fields: dataField(slot.request))
        }
    }

    /// Accepts held requests, oldest first, while connections may start. Called when one
    /// ends.
    func serveParked() {
        while let slot = state.withLock({ s -> HeldSlot? in
            guard !s.parked.isEmpty, rules.busy(inService: load(&s)) == nil else { return nil }
            s.inService += 1
            s.served += 1
            return s.parked.removeFirst()
        }) {
            let parked = slot.parked
            acceptReserved(slot, calleeData: parked?.calleeData ?? [],
                           why: "passed the admission rules\(check == nil ? "" : " and the check"); a connection ended",
                           while: "held, waiting for a connection to end",
                           waited: waited(since: parked?.since))
        }
    }

    /// Accepts `slot`'s request into the place in service counted for it, which is given
    /// back when the request has gone.
    private func acceptReserved(_ slot: HeldSlot, calleeData: [UInt8], why: String,
                                while context: String, waited: [(String, EventLog.Value)]) {
        let request = slot.request
        guard let held = slot.take() else { return unreserve() } // ended: logged already
        do throws(WSPError) {
            let accepted = try held.accept(calleeData: calleeData)
            log.event("accept", caller: request.callerAddress.description, reason: why,
                      fields: dataField(request) + waited)
            start(Stream(.accepted(accepted), peer: request.callerAddress.description),
                  reserved: true)
        } catch {
            unreserve()
            logEnded(request, error, while: context, waited: waited)
        }
    }

    private func unreserve() {
        state.withLock { s in
            s.inService -= 1
            s.served -= 1
        }
    }

    /// Refuses `slot`'s request (unless someone else took it), logging why, or how it had
    /// ended.
    private func refuse(_ slot: HeldSlot, _ reason: RefusalReason = .rejected, why: String,
                        while context: String) {
        guard let held = slot.take() else { return }
        let request = slot.request
        do throws(WSPError) {
            try held.reject(reason: reason)
            log.event("reject", caller: request.callerAddress.description, reason: why,
                      fields: dataField(request) + (reason == .rejected ? [] : [("code", .text(reason.name))]))
        } catch {
            logEnded(request, error, while: context, waited: [])
        }
    }

    /// One line for a request that ended unanswered (or whose answer failed).
    private func logEnded(_ request: ConnectionRequest, _ error: WSPError, while context: String,
                          waited: [(String, EventLog.Value)]) {
        let caller = request.callerAddress.description
        switch error {
        case .withdrawn:
            log.event("withdrawn", caller: caller, reason: "the client gave up while \(context)",
                      fields: waited)
        case .timedOut:
            log.event("timeout", caller: caller,
                      reason: "the hold deadline or the client's connect limit passed while \(context); the client was refused",
                      fields: waited + [("code", .text(error.name))])
        case .interrupted:
            return // the listener closed: the closing line counts these
        default:
            log.event("error", caller: caller,
                      reason: "the answer failed for this client: \(error.name): \(error.detail ?? error.meaning)",
                      fields: [("code", .text(error.name))])
        }
    }

    private func waited(since: Double?) -> [(String, EventLog.Value)] {
        since.map { [("waited", .seconds(now() - $0))] } ?? []
    }
}
