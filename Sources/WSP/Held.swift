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
            release: unsafeBitCast(pointers[3], to: LPFN_WSPHELDRELEASE.self))
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

/// The answered-or-not flag of one held request, shared by the value and its `deinit`.
final class HeldState: Sendable {
    let answered = Locked(false)
    /// True the first time: the caller is the one to answer.
    func claim() -> Bool { answered.withLock { a in defer { a = true }; return !a } }
}

/// A request the listener holds for the program to answer later (`CF_HOLD`): it has left the
/// queue, so the listener presents the next ones meanwhile, and its client keeps waiting (on
/// the connect-data protocol it is sent pending notices; on plain TCP its connection is not
/// handed out). Answer it exactly once, from any task: ``accept(calleeData:qos:)``,
/// ``reject(reason:)`` or ``release()``, each of which consumes it. **Dropping it unanswered
/// rejects it**, as does an answer that fails while the request is still held.
///
/// A request can end while held: its client gave up (the answer throws
/// ``WSPError/connectionReset``), the listener's hold deadline (`WSP_HOLD_DEADLINE`, 30 s by
/// default) or the client's own limit passed (``WSPError/timedOut``; the client was refused),
/// or the listener closed (``WSPError/interrupted``).
public struct HeldRequest: ~Copyable, Sendable {
    /// What the condition function saw.
    public let request: ConnectionRequest
    let handle: WSPHELD
    let listener: SocketCore
    let functions: HeldFunctions
    let state = HeldState()

    public var callerAddress: Address { request.callerAddress }
    public var callerData: [UInt8]? { request.callerData }
    public var callerQoS: QoS? { request.callerQoS }

    deinit {
        if state.claim() {
            var err: Int32 = 0
            _ = functions.reject(handle, 0, &err)
        }
    }

    /// Accepts: the client receives `calleeData` (connect-data protocol; at most the
    /// listener's `WSP_MAX_CALLEE_DATA`) and, when it asked for QoS, `qos` (nil: its own).
    public consuming func accept(calleeData: [UInt8] = [], qos: QoS? = nil) throws(WSPError)
        -> Accepted
    {
        _ = state.claim()
        var data = calleeData
        var err: Int32 = 0
        var s: SOCKET = 0
        var specific = qos?.providerSpecific ?? []
        let rc = data.withUnsafeMutableBytes { d in
            specific.withUnsafeMutableBytes { ps in
                var buf = WSABUF(len: UInt32(d.count),
                                 buf: d.baseAddress?.assumingMemoryBound(to: CChar.self))
                var q = QOS()
                q.ProviderSpecific.buf = ps.baseAddress?.assumingMemoryBound(to: CChar.self)
                return withUnsafeMutablePointer(to: &q) { qp in
                    withUnsafeMutablePointer(to: &buf) { bp in
                        qos?.write(to: qp)
                        return functions.accept(handle, d.isEmpty ? nil : bp,
                                                qos == nil ? nil : qp, &s, &err)
                    }
                }
            }
        }
        if rc != 0 {
            let error = WSPError(code: err)
            if error == .fault || error == .invalidArgument || error == .noBufferSpace {
                // Still held (the application's mistake): no request is left hanging.
                var e: Int32 = 0
                _ = functions.reject(handle, 0, &e)
            }
            throw error
        }
        return listener.adopt((s, request.callerAddress))
    }

    /// Refuses: the client's connect fails with ``WSPError/connectionRefused`` and reads
    /// `reason`.
    public consuming func reject(reason: RefusalReason = .rejected) throws(WSPError) {
        _ = state.claim()
        var err: Int32 = 0
        if functions.reject(handle, reason.code, &err) != 0 { throw WSPError(code: err) }
    }

    /// The copyable parts of the request, to move it into a child task (where
    /// ``init(parts:)`` makes it whole again); this value no longer answers it.
    consuming func disown() -> HeldParts {
        _ = state.claim()
        return HeldParts(request: request, handle: handle, listener: listener,
                         functions: functions)
    }

    init(request: ConnectionRequest, handle: WSPHELD, listener: SocketCore,
         functions: HeldFunctions) {
        self.request = request
        self.handle = handle
        self.listener = listener
        self.functions = functions
    }

    init(parts: HeldParts) {
        self.init(request: parts.request, handle: parts.handle, listener: parts.listener,
                  functions: parts.functions)
    }

    /// Puts the request back in the listener's queue, in its place by arrival.
    public consuming func release() throws(WSPError) {
        _ = state.claim()
        var err: Int32 = 0
        if functions.release(handle, &err) != 0 {
            throw WSPError(code: err)
        }
    }
}

/// A held request in pieces, on its way into a child task.
struct HeldParts: Sendable {
    let request: ConnectionRequest
    let handle: WSPHELD
    let listener: SocketCore
    let functions: HeldFunctions
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
    func holdOnce() throws(WSPError) -> HeldRequest {
        let functions = try HeldFunctions.of(self)
        let box = HoldBox()
        var accepted: SOCKET = 0
        var held: WSPHELD = 0
        var err: Int32 = 0
        let rc = functions.acceptHold(handle, nil, nil, holdTrampoline,
                                      UInt(bitPattern: Unmanaged.passUnretained(box).toOpaque()),
                                      &accepted, &held, &err)
        withExtendedLifetime(box) {}
        if rc != 0 { throw WSPError(code: err) }
        guard held != 0, let seen = box.seen else { throw .invalidArgument }
        return HeldRequest(request: seen, handle: held, listener: self, functions: functions)
    }

    /// Holds the next request, waiting (without blocking a thread) for one, or for room when
    /// the listener holds its limit.
    func holdNext() async throws(WSPError) -> HeldRequest {
        let events = try listenerRegistration()
        while true {
            if Task.isCancelled { throw .operationAborted }
            do {
                return try holdOnce()
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
    /// ``WSPError/connectionReset``.
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
