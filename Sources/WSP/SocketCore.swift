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
        /// How many times the listener has been selected for `FD_ACCEPT` so far.
        var acceptSelections: UInt64 = 0
        /// Memory the provider may write until the socket is closed: the QoS of a
        /// non-blocking connect (the provider stores the answer there when it arrives).
        /// Kept as addresses: only this object allocates and frees them.
        var pinned: [UInt] = []
        /// The listener's drop handler, which the provider may call until the socket is
        /// closed (a retained reference, released after the close).
        var dropHandler: DropHandler?
        var retired: [DropHandler] = []
        /// A listener's held requests, once it has held one (``heldNews()``).
        var heldNews: HeldNews?
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
        let taken = state.withLock { s -> (EventRegistration?, [UInt], [DropHandler], HeldNews?)? in
            if s.closed { return nil }
            s.closed = true
            defer {
                s.registration = nil; s.pinned = []; s.dropHandler = nil; s.retired = []
                s.heldNews = nil
            }
            return (s.registration, s.pinned, s.dropHandler.map { [$0] + s.retired } ?? s.retired,
                    s.heldNews)
        }
        guard let (registration, pinned, dropHandler, heldNews) = taken else { return nil }
        // Order matters: its waits end first, then the socket (which cancels the async
        // select; no upcall for it runs after that), then memory the provider could still
        // have written.
        if let registration { Notifier.shared.unregister(registration) }
        let error = provider.table.close(handle)
        heldNews?.close() // the requests it held have ended: their notices say so
        for p in pinned { UnsafeMutableRawPointer(bitPattern: p)?.deallocate() }
        withExtendedLifetime(dropHandler) {}
        return error
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

    /// The listener's `FD_ACCEPT` selection as it stands: tasks waiting, and how many times it
    /// has been selected. Two readings around an accept tell whether the selection may have
    /// been on during it.
    func acceptSelection() -> (waiting: Int, selections: UInt64) {
        state.withLock { ($0.acceptWaiters, $0.acceptSelections) }
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
            let events = delta > 0 ? Int32(FD_ACCEPT) : 0
            if delta > 0 { s.acceptSelections &+= 1 }
            do throws(WSPError) {
                try provider.table.asyncSelect(handle, window: Notifier.shared.queue,
                                               message: Notifier.message, events: events)
            } catch {
                if delta > 0 {
                    s.acceptWaiters -= 1
                    throw error
                }
            }
        }
    }

    /// A listener's held requests, made with its first hold: the listener's `WSP_HELD_EVENT`
    /// is the news reader's event from then on.
    func heldNews() throws(WSPError) -> HeldNews {
        let functions = try HeldFunctions.of(self)
        return try state.withLock { s throws(WSPError) -> HeldNews in
            if s.closed { throw .notSocket }
            if let news = s.heldNews { return news }
            let news = HeldNews(listener: handle, functions: functions)
            let reader = try HeldNewsReader.add(news)
            do throws(WSPError) {
                try setOption(level: SOL_WSP, name: WSP_HELD_EVENT, reader.event)
            } catch {
                HeldNewsReader.remove(news)
                throw error
            }
            s.heldNews = news
            return news
        }
    }

    var isRegistered: Bool { state.withLock { $0.registration != nil } }

    /// Installs (or, with nil, removes) the listener's drop handler (`WSP_DROP_HANDLER`).
    func setDropHandler(_ body: (@Sendable (Address, RefusalReason) -> Void)?) throws(WSPError) {
        try state.withLock { s throws(WSPError) in
            if s.closed { throw .notSocket }
            let handler = body.map(DropHandler.init)
            var data = WSP_DROP_HANDLER_DATA()
            if let handler {
                data.lpfnHandler = dropTrampoline
                data.dwContext = UInt(bitPattern: Unmanaged.passUnretained(handler).toOpaque())
            }
            try setOption(level: SOL_WSP, name: WSP_DROP_HANDLER, data)
            // The old one may still be running on a provider thread: kept until the close.
            if let old = s.dropHandler { s.retired.append(old) }
            s.dropHandler = handler
        }
    }

    /// Keeps `byteCount` bytes alive until the socket is closed.
    func pin(byteCount: Int) -> UnsafeMutableRawPointer {
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 16)
        let address = UInt(bitPattern: p)
        state.withLock { $0.pinned.append(address) }
        return p
    }

    // ---- one provider call each ------------------------------------------------------------

    var table: WSPPROC_TABLE { provider.table }

    /// `lpWSPAccept` once. Blocks only when the socket is in blocking mode.
    func acceptOnce(_ condition: ((ConnectionRequest) -> Decision)?)
        -> Result<(SOCKET, Address), WSPError>
    {
        guard let condition else { return table.accept(handle, condition: nil, context: 0) }
        // The closure reaches the trampoline through a pointer to this local, valid for the
        // synchronous call: no box to allocate per accept.
        var function = ConditionFunction(body: condition)
        return withUnsafeMutablePointer(to: &function) { p in
            table.accept(handle, condition: conditionTrampoline, context: UInt(bitPattern: p))
        }
    }

    /// `lpWSPSend` once; the count sent.
    func sendOnce(_ bytes: ArraySlice<UInt8>) -> Result<Int, WSPError> {
        bytes.withUnsafeBytes { table.send(handle, $0) }
    }

    /// `lpWSPRecv` once; empty means the peer closed.
    func receiveOnce(maxCount: Int) -> Result<[UInt8], WSPError> {
        var failure: WSPError? = nil
        // Received into the array itself, not zeroed first.
        let out = [UInt8](unsafeUninitializedCapacity: max(maxCount, 1)) { b, count in
            switch table.receive(handle, into: UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(b)[..<maxCount])) {
            case .success(let n): count = n
            case .failure(let e): failure = e; count = 0
            }
        }
        if let failure { return .failure(failure) }
        // A short read into a large buffer is copied to an array of its own size, so that
        // it does not hold on to the whole buffer.
        if out.count >= out.capacity / 4 { return .success(out) }
        return .success([UInt8](unsafeUninitializedCapacity: out.count) { b, count in
            count = b.initialize(fromContentsOf: out)
        })
    }

    /// `lpWSPConnect`. `callee` receives the callee data of a blocking connect (nil for a
    /// non-blocking one: the provider would write it later; read `calleeData()` instead).
    /// A refusal carries the server's reason.
    func connect(to address: Address, callerData: [UInt8]?, qos: UnsafeMutablePointer<QOS>?,
                 callee: UnsafeMutablePointer<WSABUF>?) throws(WSPError)
    {
        // Read in place (the provider only reads caller data): a mutable copy of the array
        // would be an allocation per connect.
        let data = callerData ?? []
        let result = data.withUnsafeBufferPointer { db -> WSPError? in
            var callerBuf = WSABUF(len: UInt32(db.count),
                                   buf: db.baseAddress.map { UnsafeMutableRawPointer(mutating: $0).assumingMemoryBound(to: CChar.self) })
            return withUnsafeMutablePointer(to: &callerBuf) { caller -> WSPError? in
                do throws(WSPError) {
                    try table.connect(handle, to: address, caller: callerData == nil ? nil : caller,
                                      callee: callee, qos: qos)
                    return nil
                } catch {
                    return error
                }
            }
        }
        if let result { throw withRefusal(result) }
    }

    /// `error` with the server's reason attached, when it is a refusal the server explained
    /// (`WSP_REFUSE_REASON`).
    func withRefusal(_ error: WSPError) -> WSPError {
        guard error == .connectionRefused || error == .fault else { return error }
        var reason: UInt32 = 0
        guard let n = try? withUnsafeMutableBytes(of: &reason, { b throws(WSPError) in
            try table.option(handle, level: SOL_WSP, name: WSP_REFUSE_REASON, into: b)
        }), n == 4, let refusal = RefusalReason(code: reason) else { return error }
        return WSPError(code: error.code, refusal: refusal, detail: error.detail)
    }

    /// The callee data the last connect received (`SOL_WSP`/`WSP_CALLEE_DATA`).
    func calleeData() throws(WSPError) -> [UInt8] {
        // Room for the largest callee data, on the stack and not zeroed: the provider writes
        // what it has, and only that is copied out.
        try withUnsafeTemporaryAllocation(byteCount: Int(WSP_MAX_CONNECT_DATA), alignment: 1) {
            b throws(WSPError) -> [UInt8] in
            let n = try table.option(handle, level: SOL_WSP, name: WSP_CALLEE_DATA, into: b)
            return [UInt8](UnsafeRawBufferPointer(rebasing: b[..<n]))
        }
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
        try withUnsafeMutableBytes(of: &out) { o throws(WSPError) in
            try withUnsafeMutableBytes(of: &input) { i throws(WSPError) in
                try table.ioctl(handle, code, input: value == nil ? nil : i, output: o)
            }
        }
    }

    /// Sets an option from its bytes.
    func setOption<T>(level: Int32, name: Int32, _ value: T) throws(WSPError) {
        try withUnsafeBytes(of: value) { b throws(WSPError) in
            try table.setOption(handle, level: level, name: name, bytes: b)
        }
    }

    /// Reads a DWORD option.
    func option(level: Int32, name: Int32) throws(WSPError) -> UInt32 {
        var v: UInt32 = 0
        _ = try withUnsafeMutableBytes(of: &v) { b throws(WSPError) in
            try table.option(handle, level: level, name: name, into: b)
        }
        return v
    }
}

/// A listener's drop handler, reached from the provider's thread through `dwContext`.
final class DropHandler: Sendable {
    let body: @Sendable (Address, RefusalReason) -> Void
    init(_ body: @escaping @Sendable (Address, RefusalReason) -> Void) { self.body = body }
}

/// The C drop handler: a capture-free closure, so it converts to `LPWSPDROPHANDLER`.
let dropTrampoline: LPWSPDROPHANDLER = { _, sa, length, reason, context in
    guard let raw = UnsafeRawPointer(bitPattern: context) else { return }
    let handler = Unmanaged<DropHandler>.fromOpaque(raw).takeUnretainedValue()
    var ss = sockaddr_storage()
    if let sa {
        withUnsafeMutableBytes(of: &ss) { b in
            b.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: min(Int(length), b.count)))
        }
    }
    handler.body(Address(storage: ss), RefusalReason(code: reason) ?? .other(0))
}
