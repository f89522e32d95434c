import CWSP

// The async API. Every method follows one pattern: try the provider call on the
// (non-blocking, async-selected) socket; on `WSAEWOULDBLOCK` wait for the network event that
// re-enables it — the provider's upcall resumes the task (see `Notifier`) — and try again.
// No provider call here ever waits, so the cooperative pool is never blocked.

extension SocketCore {
    /// Turns an accepted handle into an owned socket.
    func adopt(_ accepted: (SOCKET, Address)) -> Accepted {
        Accepted(socket: Socket(provider: provider, handle: accepted.0), peer: accepted.1)
    }

    func acceptAsync(_ condition: ((ConnectionRequest) -> Decision)?) async throws(WSPError)
        -> (SOCKET, Address)
    {
        let events = try listenerRegistration()
        while true {
            if Task.isCancelled { throw .operationAborted }
            let before = acceptSelection()
            switch acceptOnce(condition) {
            case .success(let accepted):
                // A socket accepted while another task waits for a request inherits the
                // listener's FD_ACCEPT selection (Winsock's rule): cancelled, so that it starts
                // as every accepted socket does, selected for nothing (a selected socket
                // cannot be made blocking). Only then: it costs a provider call.
                let after = acceptSelection()
                if before.waiting > 0 || after.waiting > 0 || before.selections != after.selections {
                    try? table.asyncSelect(accepted.0, window: Notifier.shared.queue,
                                           message: Notifier.message, events: 0)
                }
                return accepted
            case .failure(.wouldBlock):
                // Selecting the listener reports a request that is already there; a deferred
                // one (`.tryAgain`) is never waited for: it is thrown.
                try await waitForAccept(events)
            case .failure(let error):
                throw error
            }
        }
    }

    func sendAsync(_ bytes: [UInt8]) async throws(WSPError) -> Int {
        let events = try registration()
        var sent = 0
        var mask = Int32(FD_WRITE | FD_CLOSE)
        while sent < bytes.count {
            switch sendOnce(bytes[sent...]) {
            case .success(let n):
                sent += n
            case .failure(.wouldBlock):
                let fired = try await events.wait(for: mask).get()
                // FD_CLOSE happens once and stays reported: after seeing it, wait for room
                // only (a peer that only shut down its side still reads).
                if fired.events & Int32(FD_CLOSE) != 0 { mask = Int32(FD_WRITE) }
            case .failure(let error):
                throw error
            }
        }
        return sent
    }

    func receiveAsync(maxCount: Int) async throws(WSPError) -> [UInt8] {
        let events = try registration()
        var mask = Int32(FD_READ | FD_CLOSE)
        while true {
            switch receiveOnce(maxCount: maxCount) {
            case .success(let bytes):
                return bytes
            case .failure(.wouldBlock):
                let fired = try await events.wait(for: mask).get()
                if fired.events & Int32(FD_CLOSE) != 0 { mask = Int32(FD_READ) }
            case .failure(let error):
                throw error
            }
        }
    }
}

extension Socket {
    /// Accepts one connection without blocking a thread, asking `condition` first (nil:
    /// accept every request). The condition runs synchronously inside the accept, on the
    /// calling task: keep it quick and do not block in it.
    ///
    /// The outcomes are the provider's: `.reject` throws ``WSPError/connectionRefused`` (the
    /// client's connect fails with the same); `.defer` throws ``WSPError/tryAgain`` and the
    /// request stays first in line, so the next accept is shown it again; callee data longer
    /// than the request's ``ConnectionRequest/calleeCapacity`` throws ``WSPError/fault``. A
    /// cancelled task stops waiting and throws ``WSPError/operationAborted``; no request is
    /// lost by it. For a server loop that goes on through all of these, use
    /// ``connections(retryDeferredAfter:outcomes:condition:)``.
    public func accept(condition: (@Sendable (ConnectionRequest) -> Decision)? = nil)
        async throws(WSPError) -> Accepted
    {
        core.adopt(try await core.acceptAsync(condition))
    }

    /// Sends all of `bytes` without blocking a thread; returns their count.
    @discardableResult
    public func send(_ bytes: [UInt8]) async throws(WSPError) -> Int {
        try await core.sendAsync(bytes)
    }

    /// Receives at most `maxCount` bytes without blocking a thread, waiting until at least
    /// one is available; an empty result means the peer closed.
    public func receive(maxCount: Int) async throws(WSPError) -> [UInt8] {
        try await core.receiveAsync(maxCount: maxCount)
    }

    /// The connection requests reaching this listener, as an `AsyncSequence`; see
    /// ``IncomingRequests``.
    public var requests: IncomingRequests { IncomingRequests(listener: core) }
}

extension Provider {
    /// Connects without blocking a thread. On the connect-data protocol (the default when
    /// there is caller data or QoS) `callerData` and `qos` travel with the request and the
    /// call returns once the server has decided: accepted (``Connection/calleeData``,
    /// ``Connection/negotiatedQoS``), or ``WSPError/connectionRefused`` with the server's
    /// ``WSPError/refusal`` reason. A server that defers keeps the client waiting (the
    /// provider keeps the request alive) until `timeout` (nil: the provider's limit, none by
    /// default) gives ``WSPError/timedOut``; a timeout that is not positive throws
    /// ``WSPError/invalidArgument``.
    ///
    /// Cancelling the task closes the socket, which withdraws the request at the server (its
    /// condition function never sees it), and throws ``WSPError/operationAborted``.
    public func connect(to address: Address, protocol proto: TransportProtocol? = nil,
                        callerData: [UInt8]? = nil, qos: QoS? = nil,
                        timeout: Duration? = nil) async throws(WSPError) -> Connection
    {
        let proto = try Self.transport(proto, callerData: callerData, qos: qos)
        let socket = try self.socket(family: address.family, protocol: proto)
        if let timeout {
            try socket.set(.connectLimit, to: timeout)
        }
        let core = socket.core
        let events = try core.registration(selecting: Int32(FD_CONNECT))
        if Task.isCancelled { throw .operationAborted }
        // The provider keeps the QoS pointer and writes the agreed QoS there when the answer
        // arrives, after this call returns: the memory lives until the socket is closed.
        var sqos: UnsafeMutablePointer<QOS>? = nil
        if let qos {
            let specific = core.pin(byteCount: qos.providerSpecific.count)
            let q = core.pin(byteCount: MemoryLayout<QOS>.size).bindMemory(to: QOS.self, capacity: 1)
            q.initialize(to: QOS())
            q.pointee.ProviderSpecific.buf = specific.assumingMemoryBound(to: CChar.self)
            qos.write(to: q)
            sqos = q
        }
        do {
            try core.connect(to: address, callerData: callerData, qos: sqos, callee: nil)
        } catch .wouldBlock {
            let fired = try await events.wait(for: Int32(FD_CONNECT)).get()
            let code = fired.errors[Int(FD_CONNECT_BIT)]
            if code != 0 { throw core.withRefusal(WSPError(code: code)) }
        }
        let callee = proto == .tcpWithConnectData ? try core.calleeData() : []
        let agreed = qos == nil ? nil : try core.negotiatedQoS()
        return Connection(socket: socket, calleeData: callee, negotiatedQoS: agreed)
    }

    /// Resolves `host` (``Address/resolve(_:port:)``) and connects to its addresses in turn
    /// until one answers: the first that accepts, or the first refusal (a server's decision
    /// is final). Other failures move on to the next address; the last one is thrown.
    public func connect(toHost host: String, port: UInt16,
                        protocol proto: TransportProtocol? = nil, callerData: [UInt8]? = nil,
                        qos: QoS? = nil, timeout: Duration? = nil) async throws(WSPError)
        -> Connection
    {
        var last = WSPError.hostNotFound
        for address in try await Address.resolve(host, port: port) {
            do throws(WSPError) {
                return try await connect(to: address, protocol: proto, callerData: callerData,
                                         qos: qos, timeout: timeout)
            } catch {
                if error == .connectionRefused && error.refusal != nil { throw error }
                last = error
            }
        }
        throw last
    }
}

/// The connection requests reaching a listener, one element per presentation.
///
/// ```swift
/// for try await request in listener.requests {
///     if request.callerData == token {
///         let accepted = try request.accept(calleeData: welcome)
///         Task { [accepted = consume accepted] in … }
///     } else {
///         try request.reject()
///     }
/// }
/// ```
///
/// Getting an element waits (without blocking a thread) for a request and shows it to the
/// program by deferring it — the provider's own way to decide later (`CF_DEFER`: the request
/// stays first in line; the listener's `deferred` counter counts each look). Decide before
/// asking for the next element: a request left undecided is the next element again, exactly
/// as a deferred request comes back to the next accept. The sequence ends when the listener
/// is closed.
public struct IncomingRequests: AsyncSequence, Sendable {
    public typealias Element = PendingRequest
    public typealias Failure = WSPError
    let listener: SocketCore

    public struct AsyncIterator: AsyncIteratorProtocol, Sendable {
        let listener: SocketCore

        public mutating func next() async throws(WSPError) -> PendingRequest? {
            try await Self.next(from: listener)
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async throws(WSPError)
            -> PendingRequest?
        {
            try await Self.next(from: listener)
        }

        private static func next(from listener: SocketCore) async throws(WSPError)
            -> PendingRequest?
        {
            var seen: ConnectionRequest? = nil
            do {
                _ = try await listener.acceptAsync { request in
                    seen = request
                    return .defer
                }
            } catch .tryAgain {
                if let seen { return PendingRequest(request: seen, listener: listener) }
            } catch .interrupted, .notSocket {
                return nil // the listener was closed
            }
            // An accept that did not take our deferral (impossible with a working provider).
            throw .invalidArgument
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(listener: listener) }
}

/// A request the listener is holding for a decision (an element of ``IncomingRequests``).
///
/// Deciding never waits: the request is first in line, so the provider presents it at once.
/// If it is no longer there (the client gave up, or another accept is looking at it), the
/// decision throws ``WSPError/connectionReset`` and affects no other request.
public struct PendingRequest: Sendable {
    /// What the condition function would see.
    public let request: ConnectionRequest
    let listener: SocketCore

    public var callerAddress: Address { request.callerAddress }
    public var localAddress: Address { request.localAddress }
    public var callerData: [UInt8]? { request.callerData }
    public var callerQoS: QoS? { request.callerQoS }

    /// Accepts the request, answering with `calleeData` and (when the caller asked for QoS)
    /// the agreed QoS. Callee data over the listener's capacity throws ``WSPError/fault`` and
    /// keeps the request.
    public func accept(calleeData: [UInt8] = [], qos: QoS? = nil) throws(WSPError) -> Accepted {
        try listener.adopt(decide(.accept(calleeData: calleeData, qos: qos)).get())
    }

    /// The most callee data ``accept(calleeData:qos:)`` can answer with.
    public var calleeCapacity: Int { request.calleeCapacity }

    /// Refuses the request: the client's connect fails with ``WSPError/connectionRefused``.
    public func reject() throws(WSPError) {
        switch decide(.reject) {
        case .failure(.connectionRefused): return
        case .failure(let error): throw error
        case .success: throw .invalidArgument // not reachable: the answer was a refusal
        }
    }

    /// One non-blocking accept that applies `decision` to this request only.
    private func decide(_ decision: Decision) -> Result<(SOCKET, Address), WSPError> {
        var mine = false
        let result = listener.acceptOnce { presented in
            mine = presented.callerAddress == request.callerAddress
            return mine ? decision : .defer // someone else's request: leave it first in line
        }
        switch result {
        case .failure(.wouldBlock):
            return .failure(.connectionReset) // nothing waits: it was withdrawn
        case .failure(.tryAgain) where !mine:
            return .failure(.connectionReset)
        default:
            return result
        }
    }
}
