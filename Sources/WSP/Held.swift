import CWSP

// Held requests: the provider's extension (CF_HOLD, WSPAcceptHold and WSPHeld* in wsp.h) as
// Swift values. A held request has left the listener's queue; its client keeps waiting until
// it is answered, exactly once, from any task.

/// The extension functions, asked of the provider once per process (they are the library's
/// own functions, the same for every socket).
struct HeldFunctions: @unchecked Sendable {
    let acceptHold: LPFN_WSPACCEPTHOLD
    let accept: LPFN_WSPHELDACCEPT
    let reject: LPFN_WSPHELDREJECT
    let release: LPFN_WSPHELDRELEASE
    let news: LPFN_WSPHELDNEWS

    private static let cache = Locked<HeldFunctions?>(nil)

    // wsp.h's WSPID_… GUIDs (macros with braces, which Swift does not import).
    private static let ids: [GUID] = [
        GUID(Data1: 0xbb0e_d080, Data2: 0xd5f9, Data3: 0x4006,
             Data4: (0x9b, 0x58, 0x80, 0x8d, 0x51, 0x92, 0x21, 0xa3)),
        GUID(Data1: 0x3d96_8298, Data2: 0x847d, Data3: 0x4103,
             Data4: (0x93, 0xbd, 0x2f, 0x6b, 0x0f, 0xd6, 0x41, 0xaf)),
        GUID(Data1: 0x97dc_a86f, Data2: 0x3383, Data3: 0x4928,
             Data4: (0x94, 0xfb, 0x52, 0x31, 0x4b, 0x36, 0x86, 0xd3)),
        GUID(Data1: 0xc690_8433, Data2: 0xceab, Data3: 0x4fb6,
             Data4: (0x93, 0x6d, 0xc8, 0x3d, 0xe7, 0x25, 0x4b, 0xca)),
        GUID(Data1: 0x7720_e944, Data2: 0x3d9d, Data3: 0x4fb2,
             Data4: (0x8c, 0x12, 0x68, 0xac, 0x9c, 0xca, 0x35, 0xae)),
    ]

    static func of(_ core: SocketCore) throws(WSPError) -> HeldFunctions {
        if let known = cache.withLock({ $0 }) { return known }
        var pointers: [UnsafeRawPointer] = []
        for id in ids {
            var guid = id
            var fn: UnsafeRawPointer? = nil
            var returned: UInt32 = 0
            var err: Int32 = 0
            let rc = withUnsafeMutableBytes(of: &guid) { g in
                withUnsafeMutableBytes(of: &fn) { f in
                    core.provider.table.lpWSPIoctl(core.handle, SIO_GET_EXTENSION_FUNCTION_POINTER,
                                                   g.baseAddress, UInt32(g.count), f.baseAddress,
                                                   UInt32(f.count), &returned, nil, nil, nil,
                                                   &err)
                }
            }
            guard rc == 0, let fn else { throw WSPError(code: rc == 0 ? WSAEINVAL : err) }
            pointers.append(fn)
        }
        let functions = HeldFunctions(
            acceptHold: unsafeBitCast(pointers[0], to: LPFN_WSPACCEPTHOLD.self),
            accept: unsafeBitCast(pointers[1], to: LPFN_WSPHELDACCEPT.self),
            reject: unsafeBitCast(pointers[2], to: LPFN_WSPHELDREJECT.self),
            release: unsafeBitCast(pointers[3], to: LPFN_WSPHELDRELEASE.self),
            news: unsafeBitCast(pointers[4], to: LPFN_WSPHELDNEWS.self))
        cache.withLock { $0 = functions }
        return functions
    }
}

extension RefusalReason {
    /// The `WSP_REASON_…` value.
    var code: UInt32 {
        switch self {
        case .rejected: UInt32(WSP_REASON_REJECTED)
        case .backlogFull: UInt32(WSP_REASON_BACKLOG_FULL)
        case .closing: UInt32(WSP_REASON_CLOSING)
        case .dataTooLong: UInt32(WSP_REASON_DATA_TOO_LONG)
        case .malformed: UInt32(WSP_REASON_MALFORMED)
        case .handshakeTimeout: UInt32(WSP_REASON_HANDSHAKE_TIMEOUT)
        case .calleeDataTooLong: UInt32(WSP_REASON_CALLEE_DATA_TOO_LONG)
        case .expired: UInt32(WSP_REASON_EXPIRED)
        case .holdTimeout: UInt32(WSP_REASON_HOLD_TIMEOUT)
        case .other(let code): code
        }
    }
}

/// A request the listener holds for the program to answer later (`CF_HOLD`): it has left the
/// queue, so the listener presents the next ones meanwhile, and its client keeps waiting (on
/// the connect-data protocol it is sent pending notices; on plain TCP its connection is not
/// handed out). Answer it exactly once, from any task: ``accept(calleeData:qos:)``,
/// ``reject(reason:)`` or ``release()``, each of which consumes it. **Dropping it unanswered
/// rejects it**, as does an answer that fails while the request is still held.
///
/// A request can end while held, and its ``withdrawal`` notice says so at once, to any task
/// awaiting it: its client gave up (``HeldEnd/withdrawn``; an answer then throws
/// ``WSPError/withdrawn``), the listener's hold deadline (`WSP_HOLD_DEADLINE`, 30 s by
/// default, ``SocketOption/holdDeadline``) or the client's own limit passed
/// (``HeldEnd/timedOut``, ``WSPError/timedOut``; the client was refused), or the listener
/// closed (``HeldEnd/listenerClosed``, ``WSPError/interrupted``).
public struct HeldRequest: ~Copyable, Sendable {
    /// What the condition function saw.
    public let request: ConnectionRequest
    let listener: SocketCore
    let state: HeldState

    public var callerAddress: Address { request.callerAddress }
    public var callerData: [UInt8]? { request.callerData }
    public var callerQoS: QoS? { request.callerQoS }

    /// The notice of this request's end — its client withdrawing, the hold deadline, the
    /// listener closing, or the program's answer — to await from any task.
    public var withdrawal: Withdrawal { Withdrawal(state: state) }

    deinit {
        if state.owned {
            try? state.answer { code in state.functions.reject(state.handle, 0, &code) }
        }
    }

    /// Accepts: the client receives `calleeData` (connect-data protocol; at most the
    /// listener's `WSP_MAX_CALLEE_DATA`) and, when it asked for QoS, `qos` (nil: its own).
    /// Throws ``WSPError/withdrawn``, ``WSPError/timedOut`` or ``WSPError/interrupted`` when
    /// the request ended meanwhile (see ``HeldEnd``), ``WSPError/fault`` when the callee data
    /// is too long (the client is refused).
    public consuming func accept(calleeData: [UInt8] = [], qos: QoS? = nil) throws(WSPError)
        -> Accepted
    {
        var data = calleeData
        var s: SOCKET = 0
        var specific = qos?.providerSpecific ?? []
        let state = answering()
        try state.answer { code in
            data.withUnsafeMutableBytes { d in
                specific.withUnsafeMutableBytes { ps in
                    var buf = WSABUF(len: UInt32(d.count),
                                     buf: d.baseAddress?.assumingMemoryBound(to: CChar.self))
                    var q = QOS()
                    q.ProviderSpecific.buf = ps.baseAddress?.assumingMemoryBound(to: CChar.self)
                    return withUnsafeMutablePointer(to: &q) { qp in
                        withUnsafeMutablePointer(to: &buf) { bp in
                            qos?.write(to: qp)
                            return state.functions.accept(state.handle, d.isEmpty ? nil : bp,
                                                          qos == nil ? nil : qp, &s, &code)
                        }
                    }
                }
            }
        }
        // The new socket inherits the listener's selection, which is on while another task
        // waits for a request (SocketCore.waitForAccept): cancelled, so that it starts as
        // every accepted socket does, non-blocking and selected for nothing (a selected
        // socket cannot be made blocking).
        try? listener.table.asyncSelect(s, window: Notifier.shared.queue,
                                        message: Notifier.message, events: 0)
        return listener.adopt((s, request.callerAddress))
    }

    /// Refuses: the client's connect fails with ``WSPError/connectionRefused`` and reads
    /// `reason`. Throws as ``accept(calleeData:qos:)`` when the request ended meanwhile.
    public consuming func reject(reason: RefusalReason = .rejected) throws(WSPError) {
        let state = answering()
        try state.answer { code in state.functions.reject(state.handle, reason.code, &code) }
    }

    /// Puts the request back in the listener's queue, in its place by arrival.
    public consuming func release() throws(WSPError) {
        let state = answering()
        try state.answer { code in state.functions.release(state.handle, &code) }
    }

    /// The state, for an answer given now: this value's end (whenever it comes) no longer
    /// answers.
    private func answering() -> HeldState {
        state.owned = false
        return state
    }

    /// The copyable parts of the request, to move it into a child task (where
    /// ``init(parts:)`` makes it whole again); this value no longer answers it.
    consuming func disown() -> HeldParts {
        state.owned = false
        return HeldParts(request: request, listener: listener, state: state)
    }

    init(request: ConnectionRequest, listener: SocketCore, state: HeldState) {
        self.request = request
        self.listener = listener
        self.state = state
    }

    init(parts: HeldParts) {
        parts.state.owned = true
        self.init(request: parts.request, listener: parts.listener, state: parts.state)
    }
}

/// A held request in pieces, on its way into a child task.
struct HeldParts: Sendable {
    let request: ConnectionRequest
    let listener: SocketCore
    let state: HeldState
}

extension WSPError {
    /// `WSAENOBUFS`: no buffer space, or the listener holds `WSP_HOLD_LIMIT` requests already.
    public static let noBufferSpace = WSPError(code: WSAENOBUFS)
    /// `WSA_INVALID_HANDLE`: a held request was answered already.
    public static let invalidHandle = WSPError(code: WSA_INVALID_HANDLE)
}

/// Records what the provider presents and holds it.
private final class HoldBox {
    var seen: ConnectionRequest?
}

private let holdTrampoline: LPCONDITIONPROC = { callerId, callerData, sqos, _, calleeId, calleeData, _, ctx in
    let box = Unmanaged<HoldBox>.fromOpaque(UnsafeRawPointer(bitPattern: ctx)!)
        .takeUnretainedValue()
    box.seen = ConnectionRequest(callerAddress: address(callerId),
                                 localAddress: address(calleeId),
                                 callerData: bytes(callerData),
                                 callerQoS: sqos.map { QoS($0.pointee) },
                                 calleeCapacity: Int(calleeData?.pointee.len ?? 0))
    return CF_HOLD
}

extension SocketCore {
    /// One non-blocking WSPAcceptHold that holds whatever is presented.
    func holdOnce(_ news: HeldNews) throws(WSPError) -> HeldRequest {
        let functions = news.functions
        let box = HoldBox()
        var accepted: SOCKET = 0
        var held: WSPHELD = 0
        var err: Int32 = 0
        news.beginHold()
        let rc = functions.acceptHold(handle, nil, nil, holdTrampoline,
                                      UInt(bitPattern: Unmanaged.passUnretained(box).toOpaque()),
                                      &accepted, &held, &err)
        withExtendedLifetime(box) {}
        guard rc == 0, held != 0, let seen = box.seen else {
            news.register(nil)
            throw rc != 0 ? WSPError(code: err) : .invalidArgument
        }
        let state = HeldState(handle: held, functions: functions, news: news)
        news.register(state)
        return HeldRequest(request: seen, listener: self, state: state)
    }

    /// Holds the next request, waiting (without blocking a thread) for one, or for room when
    /// the listener holds its limit.
    func holdNext() async throws(WSPError) -> HeldRequest {
        let events = try listenerRegistration()
        let news = try heldNews()
        while true {
            if Task.isCancelled { throw .operationAborted }
            do {
                return try holdOnce(news)
            } catch .wouldBlock, .noBufferSpace {
                try await waitForAccept(events)
            }
        }
    }
}

extension Socket {
    /// Holds the next connection request (waiting for one without blocking a thread) and
    /// returns it to be answered later; see ``HeldRequest``. At most `WSP_HOLD_LIMIT`
    /// requests (1024 by default) are held at once per listener: beyond that the call waits
    /// until one is answered.
    public func hold() async throws(WSPError) -> HeldRequest {
        try await core.holdNext()
    }

    /// Accepts one connection, deciding with an `async` closure: the request is held (it
    /// leaves the queue, so other accepts go on with the next ones) while `decide` runs, then
    /// answered with its decision. Many decisions may be in flight at once — one per task
    /// calling this — bounded by the listener's `WSP_HOLD_LIMIT` (1024 by default; beyond
    /// it a call waits for room).
    ///
    /// `.reject` throws ``WSPError/connectionRefused``; `.defer` puts the request back in
    /// line, in its place, and throws ``WSPError/tryAgain``. If the task is cancelled while
    /// `decide` runs, the request is rejected and the call throws
    /// ``WSPError/operationAborted``. A client that gives up meanwhile makes the call throw
    /// ``WSPError/withdrawn`` once `decide` returns (to stop deciding early, hold the request
    /// with ``hold()`` and await its ``HeldRequest/withdrawal``).
    ///
    /// ```swift
    /// let accepted = try await listener.accept { request async in
    ///     await allowList.contains(request.callerAddress) ? .accept() : .reject
    /// }
    /// ```
    public func accept(deciding decide: (ConnectionRequest) async -> Decision)
        async throws(WSPError) -> Accepted
    {
        try await Self.decide(try await core.holdNext(), decide)
    }

    /// Answers `held` with `decide`'s decision (see ``accept(deciding:)``).
    static func decide(_ held: consuming HeldRequest,
                       _ decide: (ConnectionRequest) async -> Decision)
        async throws(WSPError) -> Accepted
    {
        let decision = await decide(held.request)
        if Task.isCancelled {
            try held.reject()
            throw .operationAborted
        }
        switch decision {
        case .accept(let calleeData, let qos):
            return try held.accept(calleeData: calleeData, qos: qos)
        case .reject:
            try held.reject()
            throw .connectionRefused
        case .defer:
            try held.release()
            throw .tryAgain
        }
    }
}

extension Socket {
    /// Serves the listener with an `async` decision per request, many at once: each request
    /// is held as it arrives (so a slow decision delays no other client), up to
    /// `maxDecisions` decisions run concurrently (then the next request waits in the queue),
    /// and each accepted connection is handed to `handle` on the deciding task.
    ///
    /// Runs until the listener is closed (then it returns) or the task is cancelled
    /// (decisions in flight see the cancellation, and their requests are rejected). Errors of
    /// single requests (a client that left, a rejection) end only that request.
    ///
    /// ```swift
    /// try await listener.serve(maxDecisions: 64) { request in
    ///     await quota.allows(request.callerAddress) ? .accept() : .reject
    /// } handle: { accepted in
    ///     try? await accepted.socket.send(Array("hello".utf8))
    /// }
    /// ```
    public func serve(maxDecisions: Int = 64,
                      deciding decide: @escaping @Sendable (ConnectionRequest) async -> Decision,
                      handle: @escaping @Sendable (consuming Accepted) async -> Void)
        async throws(WSPError)
    {
        let core = self.core
        let bound = max(1, maxDecisions)
        let failure: WSPError? = await withTaskGroup(of: Void.self) { group in
            var inFlight = 0
            while true {
                if inFlight >= bound {
                    await group.next()
                    inFlight -= 1
                    continue
                }
                let parts: HeldParts
                do throws(WSPError) {
                    parts = try await core.holdNext().disown()
                } catch .interrupted, .notSocket {
                    return nil // the listener was closed
                } catch {
                    return error == .operationAborted ? nil : error
                }
                inFlight += 1
                group.addTask {
                    do throws(WSPError) {
                        let accepted = try await Socket.decide(HeldRequest(parts: parts), decide)
                        await handle(accepted)
                    } catch {
                        // this request's end (rejected, deferred, withdrawn): not the server's
                    }
                }
            }
        }
        if let failure { throw failure }
    }
}
