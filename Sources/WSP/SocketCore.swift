import CWSP

/// A provider socket handle and everything attached to it: the one object that calls the
/// table for a socket.
///
/// `Socket` (which is `~Copyable`) owns a core and is the only thing that closes it; pending
/// requests (`PendingRequest`) share the listener's core so they can answer later. `close()`
/// is idempotent under a lock, which is what makes "closed exactly once" hold on every path:
/// an explicit `Socket.close()`, `Socket`'s `deinit`, a thrown error or a cancelled task.
/// A call that reaches the provider after the close gets `WSAENOTSOCK` from it (handles carry
/// a generation and are not reused), never a call on somebody else's socket.
final class SocketCore: Sendable {
    let provider: Provider
    let handle: SOCKET

    private struct State {
        var closed = false
        var registration: EventRegistration?
        /// The events the socket is selected for now (see ``registration(selecting:)``).
        var selected: Int32 = 0
        /// Tasks of a listener waiting for `FD_ACCEPT`; it is selected while there are any.
        var acceptWaiters = 0
        /// Memory the provider may write until the socket is closed: the QoS of a
        /// non-blocking connect (the provider stores the answer there when it arrives).
        /// Kept as addresses: only this object allocates and frees them.
        var pinned: [UInt] = []
    }
    private let state = Locked(State())

    init(provider: Provider, handle: SOCKET) {
        self.provider = provider
        self.handle = handle
    }

    deinit {
        // Only reached when a Socket never took ownership (it always closes): defensive.
        _ = close()
    }

    /// Closes the handle the first time; later calls do nothing and return nil.
    func close() -> WSPError? {
        let taken = state.withLock { s -> (EventRegistration?, [UInt])? in
            if s.closed { return nil }
            s.closed = true
            defer { s.registration = nil; s.pinned = [] }
            return (s.registration, s.pinned)
        }
        guard let (registration, pinned) = taken else { return nil }
        // Order matters: its waits end first, then the socket (which cancels the async
        // select; no upcall for it runs after that), then memory the provider could still
        // have written.
        if let registration { Notifier.shared.unregister(registration) }
        var err: Int32 = 0
        let rc = provider.table.lpWSPCloseSocket(handle, &err)
        for p in pinned { UnsafeMutableRawPointer(bitPattern: p)?.deallocate() }
        return rc == 0 ? nil : WSPError(code: err)
    }

    /// The socket's event registration, made on first use. From then on the socket is
    /// non-blocking (the provider's rule for async select): synchronous calls that would wait
    /// throw `.wouldBlock` instead.
    ///
    /// `events` are the events the caller may wait for. A connect asks for `FD_CONNECT`
    /// alone and the first send or receive for all of ``Notifier/mask``: a connected socket
    /// selected for data events costs the provider a watch on its descriptor (system calls
    /// when it starts and ends, a reactor wake-up when the peer closes), which a connection
    /// that never waits for data does not need. Selecting again reports what already holds.
    func registration(selecting events: Int32 = Notifier.mask) throws(WSPError)
        -> EventRegistration
    {
        try state.withLock { s throws(WSPError) -> EventRegistration in
            if s.closed { throw .notSocket }
            if let r = s.registration {
                if s.selected & events != events {
                    try Notifier.shared.select(provider: provider, socket: handle,
                                               events: Notifier.mask)
                    s.selected = Notifier.mask
                }
                return r
            }
            let r = try Notifier.shared.register(provider: provider, socket: handle,
                                                 events: events)
            s.registration = r
            s.selected = events
            return r
        }
    }

    /// A listener's registration, made on first use: non-blocking from then on, like any
    /// registered socket, but selected only while a task waits for a request
    /// (``waitForAccept(_:)``). Accepted sockets inherit the listener's selection (the
    /// provider's rule), and a selected connected socket costs the provider a watch on its
    /// descriptor (system calls when it starts and when it ends)
    /// that an accepted socket used synchronously, or just closed, never needs. Such a
    /// socket still starts non-blocking, as the listener is.
    func listenerRegistration() throws(WSPError) -> EventRegistration {
        try state.withLock { s throws(WSPError) -> EventRegistration in
            if s.closed { throw .notSocket }
            if let r = s.registration { return r }
            var none: UInt32 = 0
            try ioctl(WSP_FIONBIO, in: 1, out: &none)
            let r = try Notifier.shared.register(provider: provider, socket: handle, events: 0)
            s.registration = r
            return r
        }
    }

    /// Suspends until the listener has a request to accept (or the wait fails).
    func waitForAccept(_ events: EventRegistration) async throws(WSPError) {
        try selectAccept(waiting: 1)
        defer { try? selectAccept(waiting: -1) }
        _ = try await events.wait(for: Int32(FD_ACCEPT)).get()
    }

    /// Counts a task that starts (1) or stops (-1) waiting for `FD_ACCEPT`; the first selects
    /// the listener and the last deselects it. Under the lock, so that selections follow the
    /// count; the provider's upcalls never take it.
    private func selectAccept(waiting delta: Int) throws(WSPError) {
        try state.withLock { s throws(WSPError) in
            if s.closed {
                if delta > 0 { throw .interrupted }
                return
            }
            s.acceptWaiters += delta
            guard s.acceptWaiters == (delta > 0 ? 1 : 0) else { return }
            var err: Int32 = 0
            let events = delta > 0 ? Int32(FD_ACCEPT) : 0
            if provider.table.lpWSPAsyncSelect(handle, Notifier.shared.queue, Notifier.message,
                                               events, &err) != 0 && delta > 0
            {
                s.acceptWaiters -= 1
                throw WSPError(code: err)
            }
        }
    }

    var isRegistered: Bool { state.withLock { $0.registration != nil } }

    /// Keeps `byteCount` bytes alive until the socket is closed.
    func pin(byteCount: Int) -> UnsafeMutableRawPointer {
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 16)
        let address = UInt(bitPattern: p)
        state.withLock { $0.pinned.append(address) }
        return p
    }

    // ---- one provider call each ------------------------------------------------------------

    func check(_ rc: Int32, _ err: Int32) throws(WSPError) {
        if rc != 0 { throw WSPError(code: err) }
    }

    /// `lpWSPAccept` once. Blocks only when the socket is in blocking mode.
    func acceptOnce(_ condition: ((ConnectionRequest) -> Decision)?)
        -> Result<(SOCKET, Address), WSPError>
    {
        var ss = sockaddr_storage()
        var len = Int32(MemoryLayout<sockaddr_storage>.size)
        var err: Int32 = 0
        let box = condition.map(ConditionBox.init)
        let ctx = box.map { UInt(bitPattern: Unmanaged.passUnretained($0).toOpaque()) } ?? 0
        let s = withUnsafeMutablePointer(to: &ss) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                provider.table.lpWSPAccept(handle, $0, &len, box == nil ? nil : conditionTrampoline,
                                           ctx, &err)
            }
        }
        withExtendedLifetime(box) {}
        if s == ~SOCKET(0) { return .failure(WSPError(code: err)) }
        return .success((s, Address(storage: ss)))
    }

    /// `lpWSPSend` once; the count sent.
    func sendOnce(_ bytes: ArraySlice<UInt8>) -> Result<Int, WSPError> {
        var sent: UInt32 = 0
        var err: Int32 = 0
        let rc = bytes.withUnsafeBufferPointer { b in
            // WSABUF's pointer is mutable for both directions; a send only reads through it.
            let p = b.baseAddress.map { UnsafeMutableRawPointer(mutating: $0) }
            var buf = WSABUF(len: UInt32(b.count), buf: p?.assumingMemoryBound(to: CChar.self))
            return provider.table.lpWSPSend(handle, &buf, 1, &sent, 0, nil, nil, nil, &err)
        }
        return rc == 0 ? .success(Int(sent)) : .failure(WSPError(code: err))
    }

    /// `lpWSPRecv` once; empty means the peer closed.
    func receiveOnce(maxCount: Int) -> Result<[UInt8], WSPError> {
        var got: UInt32 = 0
        var flags: UInt32 = 0
        var err: Int32 = 0
        var rc: Int32 = 0
        // Received into the array itself, not zeroed first.
        let out = [UInt8](unsafeUninitializedCapacity: max(maxCount, 1)) { b, count in
            var buf = WSABUF(len: UInt32(maxCount),
                             buf: UnsafeMutableRawPointer(b.baseAddress!).assumingMemoryBound(to: CChar.self))
            rc = provider.table.lpWSPRecv(handle, &buf, 1, &got, &flags, nil, nil, nil, &err)
            count = rc == 0 ? Int(got) : 0
        }
        if rc != 0 { return .failure(WSPError(code: err)) }
        // A short read into a large buffer is copied to an array of its own size, so that
        // it does not hold on to the whole buffer.
        if out.count >= out.capacity / 4 { return .success(out) }
        return .success([UInt8](unsafeUninitializedCapacity: out.count) { b, count in
            count = b.initialize(fromContentsOf: out)
        })
    }

    /// `lpWSPConnect`. `callee` receives the callee data of a blocking connect (nil for a
    /// non-blocking one: the provider would write it later; read `calleeData()` instead).
    func connect(to address: Address, callerData: [UInt8]?, qos: UnsafeMutablePointer<QOS>?,
                 callee: UnsafeMutablePointer<WSABUF>?) throws(WSPError)
    {
        var err: Int32 = 0
        var data = callerData ?? []
        let rc = data.withUnsafeMutableBufferPointer { db in
            var callerBuf = WSABUF(len: UInt32(db.count),
                                   buf: db.baseAddress.map { UnsafeMutableRawPointer($0).assumingMemoryBound(to: CChar.self) })
            return address.withSockaddr { sa, len in
                withUnsafeMutablePointer(to: &callerBuf) { caller in
                    provider.table.lpWSPConnect(handle, sa, len, callerData == nil ? nil : caller,
                                                callee, qos, nil, &err)
                }
            }
        }
        try check(rc, err)
    }

    /// The callee data the last connect received (`SOL_WSP`/`WSP_CALLEE_DATA`).
    func calleeData() throws(WSPError) -> [UInt8] {
        var err: Int32 = 0
        // Room for the largest callee data, on the stack and not zeroed: the provider writes
        // what it has, and only that is copied out.
        let (rc, data) = withUnsafeTemporaryAllocation(of: CChar.self,
                                                       capacity: Int(WSP_MAX_CONNECT_DATA)) { b in
            var len = Int32(b.count)
            let rc = provider.table.lpWSPGetSockOpt(handle, SOL_WSP, WSP_CALLEE_DATA,
                                                    b.baseAddress!, &len, &err)
            let written = UnsafeRawBufferPointer(b).prefix(rc == 0 ? Int(len) : 0)
            return (rc, [UInt8](written))
        }
        try check(rc, err)
        return data
    }

    /// The QoS the connection agreed on (`SIO_GET_QOS`; provider-specific bytes are not
    /// reported there).
    func negotiatedQoS() throws(WSPError) -> QoS {
        var q = QOS()
        try ioctl(SIO_GET_QOS, out: &q)
        q.ProviderSpecific = WSABUF(len: 0, buf: nil)
        return QoS(q)
    }

    func ioctl<Out>(_ code: UInt32, in value: UInt32? = nil, out: inout Out) throws(WSPError) {
        var input = value ?? 0
        var returned: UInt32 = 0
        var err: Int32 = 0
        let rc = withUnsafeMutableBytes(of: &out) { o in
            withUnsafeMutableBytes(of: &input) { i in
                provider.table.lpWSPIoctl(handle, code, value == nil ? nil : i.baseAddress,
                                          value == nil ? 0 : 4, o.baseAddress, UInt32(o.count),
                                          &returned, nil, nil, nil, &err)
            }
        }
        try check(rc, err)
    }
}
