import CWSP

/// What became of one request (or, for withdrawals, of some) at a listener served by
/// ``Socket/connections(retryDeferredAfter:outcomes:condition:)``: the loop's log.
public enum AcceptOutcome: Sendable, Hashable {
    /// The condition function accepted the request; the connection is the next element.
    case accepted(ConnectionRequest)
    /// The condition function rejected the request; its client was refused.
    case rejected(ConnectionRequest)
    /// The condition function deferred the request (reported once per request, however
    /// often it is shown again).
    case deferred(ConnectionRequest)
    /// A client gave up before an answer reached it: while the condition function was
    /// deciding, while deferred, or while queued. `caller` is the client when the loop can
    /// tell (it was shown, or it was the deferred request), nil for one that left while
    /// queued, unseen. One outcome per client, as the listener counts them.
    case withdrawn(caller: Address?)
    /// The accept of this request failed (for example ``WSPError/fault``: the callee data did
    /// not fit the client's ``ConnectionRequest/calleeCapacity``). Only that request is
    /// affected; `request` is nil when the failure came before any request was shown.
    case failed(ConnectionRequest?, WSPError)
    /// The provider ended or refused a request on the listener's behalf, without showing it
    /// to the condition function (a full backlog, data too long, a malformed request, …).
    case dropped(caller: Address, reason: RefusalReason)
}

extension Socket {
    /// The connections this listener accepts, one element each, for a server loop that goes
    /// on whatever happens to one client:
    ///
    /// ```swift
    /// for try await connection in listener.connections(condition: { request in
    ///     request.callerData == token ? .accept(calleeData: welcome) : .reject
    /// }) {
    ///     Task { try await connection.send(Array("hi\n".utf8)) }
    /// }
    /// ```
    ///
    /// A rejection, a deferral, a client that gives up, or one request whose accept fails
    /// is an outcome of that client, not an error of the loop: `outcomes` (when given) hears
    /// of each as an ``AcceptOutcome``, on the iterating task (``AcceptOutcome/dropped(caller:reason:)``
    /// comes from a provider thread: keep the callback short and thread-safe). A deferred
    /// request stays first in line and is shown again after `retryDeferredAfter` (the only
    /// time the loop wakes without an event). The sequence ends (nil) when the
    /// listener is closed; it throws only when the listener itself fails and
    /// ``WSPError/operationAborted`` when the iterating task is cancelled.
    ///
    /// With `outcomes` this call installs the listener's drop handler (``onDrop(_:)``),
    /// replacing one set before, so drops are heard from now on.
    public func connections(
        retryDeferredAfter: Duration = .milliseconds(100),
        outcomes: (@Sendable (AcceptOutcome) -> Void)? = nil,
        condition: @escaping @Sendable (ConnectionRequest) -> Decision = { _ in .accept() }
    ) -> ListenerConnections {
        ListenerConnections(listener: core, retry: retryDeferredAfter, outcomes: outcomes,
                            condition: condition)
    }
}

/// The accepted connections of a listener (``Socket/connections(retryDeferredAfter:outcomes:condition:)``).
public struct ListenerConnections: AsyncSequence, Sendable {
    public typealias Element = IncomingConnection
    public typealias Failure = WSPError

    let listener: SocketCore
    let retry: Duration
    let outcomes: (@Sendable (AcceptOutcome) -> Void)?
    let condition: @Sendable (ConnectionRequest) -> Decision

    init(listener: SocketCore, retry: Duration, outcomes: (@Sendable (AcceptOutcome) -> Void)?,
         condition: @escaping @Sendable (ConnectionRequest) -> Decision) {
        self.listener = listener
        self.retry = retry
        self.outcomes = outcomes
        self.condition = condition
        if let outcomes {
            // At once, not when iteration starts: requests may already be arriving. A
            // provider without drop handlers (WSAENOPROTOOPT) still serves: no drops heard.
            try? listener.setDropHandler { caller, reason in
                outcomes(.dropped(caller: caller, reason: reason))
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(sequence: self)
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let sequence: ListenerConnections
        /// The caller of the request deferred last: a deferral is reported once per request.
        var deferredCaller: Address? = nil
        var withdrawnCounted: UInt64? = nil

        init(sequence: ListenerConnections) {
            self.sequence = sequence
            // The count before the loop: withdrawals are reported from here on.
            withdrawnCounted = try? ListenerStatistics.read(sequence.listener).withdrawn
        }

        public mutating func next() async throws(WSPError) -> IncomingConnection? {
            try await next(isolation: nil)
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async throws(WSPError)
            -> IncomingConnection?
        {
            let listener = sequence.listener
            while true {
                if Task.isCancelled { throw .operationAborted }
                let shown = ShownRequests()
                let condition = sequence.condition
                var pause = false
                var deferredNow = false
                var result: IncomingConnection? = nil
                do throws(WSPError) {
                    let (handle, peer) = try await listener.acceptAsync { request in
                        shown.append(request)
                        return condition(request)
                    }
                    let request = shown.last
                    if let request { report(.accepted(request)) }
                    result = IncomingConnection(core: SocketCore(provider: listener.provider,
                                                                 handle: handle),
                                                peer: peer, request: request)
                } catch .tryAgain {
                    if let request = shown.last, request.callerAddress != deferredCaller {
                        deferredCaller = request.callerAddress
                        report(.deferred(request))
                    }
                    pause = true
                    deferredNow = true
                } catch .connectionRefused {
                    if let request = shown.last { report(.rejected(request)) }
                } catch .interrupted, .notSocket {
                    return nil // the listener was closed
                } catch .operationAborted {
                    throw .operationAborted
                } catch {
                    report(.failed(shown.last, error))
                    // A failure that keeps the request first in line (an answer the provider
                    // could not use) would come back at once: give it the deferral's pause.
                    pause = error == .invalidArgument || error == .tooManyOpenFiles
                }
                countWithdrawals(shown: shown.all)
                // Any other answer settles the deferred request, or shows it has gone.
                if !deferredNow && shown.last != nil { deferredCaller = nil }
                if let result { return result }
                if pause {
                    try await Pause.sleep(for: sequence.retry)
                    // A deferred client that gave up meanwhile leaves nothing to accept: the
                    // next accept waits, so it is reported now.
                    countWithdrawals(shown: [])
                }
            }
        }

        private func report(_ outcome: AcceptOutcome) {
            sequence.outcomes?(outcome)
        }

        /// Withdrawals the listener counted since the last look, one outcome each, named
        /// where the loop can tell who: requests shown this round that got no answer (their
        /// clients left while the condition function decided), then the deferred request
        /// when this round did not show it.
        private mutating func countWithdrawals(shown: [ConnectionRequest]) {
            guard sequence.outcomes != nil,
                  let stats = try? ListenerStatistics.read(sequence.listener) else { return }
            defer { withdrawnCounted = stats.withdrawn }
            guard let before = withdrawnCounted, stats.withdrawn > before else { return }
            var callers: [Address] = shown.dropLast().map(\.callerAddress)
            if let deferred = deferredCaller,
               !shown.contains(where: { $0.callerAddress == deferred }) {
                callers.append(deferred)
                deferredCaller = nil
            }
            for i in 0..<Int(stats.withdrawn - before) {
                report(.withdrawn(caller: i < callers.count ? callers[i] : nil))
            }
        }
    }
}

/// The requests one accept showed its condition function (more than one when a client left
/// between the decision and the answer). Written and read on the accepting task only.
private final class ShownRequests: @unchecked Sendable {
    var all: [ConnectionRequest] = []
    func append(_ r: ConnectionRequest) { all.append(r) }
    var last: ConnectionRequest? { all.last }
}

/// A connection accepted by ``ListenerConnections``: the element of a server loop.
///
/// A class, so that it can be an `AsyncSequence` element and be captured by the task that
/// serves it; it closes its socket once, on ``close()`` or when the last reference goes.
/// For code written against ``Socket``, ``takeSocket()`` hands the socket over.
public final class IncomingConnection: Sendable {
    let core: SocketCore
    /// The client's address.
    public let peer: Address
    /// The request as the condition function saw it.
    public let request: ConnectionRequest?
    private let taken = Locked(false)

    init(core: SocketCore, peer: Address, request: ConnectionRequest?) {
        self.core = core
        self.peer = peer
        self.request = request
    }

    /// Sends all of `bytes` without blocking a thread; returns their count.
    @discardableResult
    public func send(_ bytes: [UInt8]) async throws(WSPError) -> Int {
        try await core.sendAsync(bytes)
    }

    /// Receives at most `maxCount` bytes without blocking a thread; empty: the peer closed.
    public func receive(maxCount: Int) async throws(WSPError) -> [UInt8] {
        try await core.receiveAsync(maxCount: maxCount)
    }

    /// Ends one or both directions (see ``Socket/shutdown(_:)``).
    public func shutdown(_ direction: Socket.ShutdownDirection) throws(WSPError) {
        try core.table.shutdown(core.handle, how: direction.raw)
    }

    /// Closes the connection now; later calls throw ``WSPError/notSocket``.
    public func close() throws(WSPError) {
        if let error = core.close() { throw error }
    }

    /// The connection as an owned ``Socket`` (once: later calls throw
    /// ``WSPError/invalidArgument``). The socket and this object share the handle; it is
    /// closed once, by whichever closes first.
    public func takeSocket() throws(WSPError) -> Socket {
        let first = taken.withLock { t in
            defer { t = true }
            return !t
        }
        guard first else { throw .invalid("the socket of this connection was already taken") }
        return Socket(core: core)
    }
}

extension ListenerStatistics {
    static func read(_ core: SocketCore) throws(WSPError) -> ListenerStatistics {
        var st = WSP_LISTENER_STATS_DATA()
        try core.ioctl(SIO_WSP_LISTENER_STATS, out: &st)
        return ListenerStatistics(st)
    }
}
