import CWSP

/// A WSP socket. It owns its provider handle and closes it exactly once: by `close()`, or
/// when the socket goes out of scope (including when an error is thrown or a task is
/// cancelled while it waits).
///
/// ## Why `~Copyable`
/// A socket is a resource with one owner, like a file descriptor. Being `~Copyable`, a
/// `Socket` cannot be duplicated by accident, and ownership moves visibly (`consume`,
/// returning it, storing it in ``Connection`` or ``Accepted``): the last owner's scope ends
/// its life and closes it. A class would keep a socket alive as long as any reference to it;
/// a plain struct would be copied and closed twice. Methods borrow the socket, so a call
/// cannot outlive it. `close()` borrows too, so that a socket held by a top-level `let` or
/// captured by a `Task` can be closed explicitly; inside, the socket holds a core whose close
/// is idempotent, so the handle is closed once whichever comes first, and every later call
/// throws ``WSPError/notSocket``.
///
/// `Socket` is `Sendable`: it can be moved into another task (for example one task per
/// accepted connection).
///
/// ## Synchronous and async use
/// The synchronous methods call the provider directly and block the calling thread when the
/// socket is in blocking mode (the default): call them from your own threads, never from
/// Swift's cooperative pool. The `async` methods (``accept(condition:)``, `send(_:)`,
/// `receive(maxCount:)`, ``Provider/connect(to:protocol:callerData:qos:timeout:)``) never
/// block a thread: the first of them registers the socket with the provider's event
/// notification, which makes it non-blocking for good, so afterwards a synchronous call that
/// would have to wait throws ``WSPError/wouldBlock``.
public struct Socket: ~Copyable, Sendable {
    let core: SocketCore

    /// The provider handle (not a file descriptor). After the socket is closed the provider
    /// answers any call on it with `WSAENOTSOCK`.
    public var handle: SOCKET { core.handle }

    init(provider: Provider, handle: SOCKET) {
        core = SocketCore(provider: provider, handle: handle)
    }

    init(core: SocketCore) {
        self.core = core
    }

    deinit {
        _ = core.close()
    }

    /// Closes the socket now, reporting a failure the implicit close would swallow.
    ///
    /// Borrowing, so that it works wherever the socket is: held by a top-level `let`, moved
    /// into a `Task` (`Task { [socket = consume socket] in …; try socket.close() }`), or
    /// inside a ``Connection``. The handle is still closed exactly once: later calls on the
    /// socket throw ``WSPError/notSocket``, a second `close()` does nothing, and the
    /// implicit close at the end of the socket's life finds it closed.
    public func close() throws(WSPError) {
        if let error = core.close() { throw error }
    }

    public func bind(to address: Address) throws(WSPError) {
        try core.table.bind(handle, to: address)
    }

    /// Listens; the provider clamps the backlog to 1…`WSP_MAX_BACKLOG` (4096). A backlog
    /// below 1 throws ``WSPError/invalidArgument``.
    public func listen(backlog: Int32) throws(WSPError) {
        guard backlog >= 1 else { throw .invalid("the backlog must be at least 1, not \(backlog)") }
        try core.table.listen(handle, backlog: backlog)
    }

    /// The socket's local address.
    public var localAddress: Address {
        get throws(WSPError) { try core.table.localAddress(handle) }
    }

    /// Ends one or both directions (`lpWSPShutdown`): `.sending` tells the peer no more
    /// bytes come (it reads the end of the stream); `.receiving` and `.both` also wake a
    /// thread blocked in a synchronous `receive`.
    public func shutdown(_ direction: ShutdownDirection) throws(WSPError) {
        try core.table.shutdown(handle, how: direction.raw)
    }

    /// Which direction ``shutdown(_:)`` ends.
    public enum ShutdownDirection: Sendable {
        case receiving, sending, both
        var raw: Int32 {
            switch self {
            case .receiving: Int32(SD_RECEIVE)
            case .sending: Int32(SD_SEND)
            case .both: Int32(SD_BOTH)
            }
        }
    }

    /// Sets a DWORD-valued option by its C level and name (`SOL_WSP` options, `SO_RCVTIMEO`
    /// in milliseconds, …). Prefer the typed ``set(_:to:)``.
    public func setOption(level: Int32, name: Int32, value: UInt32) throws(WSPError) {
        try core.setOption(level: level, name: name, value)
    }

    /// Reads a DWORD-valued option by its C level and name. Prefer the typed ``option(_:)``.
    public func option(level: Int32, name: Int32) throws(WSPError) -> UInt32 {
        try core.option(level: level, name: name)
    }

    /// Calls `handler` for each request this listener ends or refuses on its own, without
    /// showing it to a condition function: a full backlog, caller data too long, a malformed
    /// request, a handshake past its deadline, callee data that did not fit the client, a
    /// client whose connect limit passed (`WSP_DROP_HANDLER`). It runs on a provider thread:
    /// keep it short and do not block in it. nil removes it; closing the listener ends it.
    public func onDrop(_ handler: (@Sendable (_ caller: Address, _ reason: RefusalReason) -> Void)?)
        throws(WSPError)
    {
        try core.setDropHandler(handler)
    }

    /// Blocking or non-blocking mode (`FIONBIO`). Once an async method has been used, the
    /// provider refuses blocking mode (`.invalidArgument`).
    public func setNonBlocking(_ on: Bool) throws(WSPError) {
        // A listener is selected only while an accept waits, so the provider alone would
        // not always refuse.
        if !on && core.isRegistered { throw .invalidArgument }
        var none: UInt32 = 0
        try core.ioctl(WSP_FIONBIO, in: on ? 1 : 0, out: &none)
    }

    /// A listener's counters (`SIO_WSP_LISTENER_STATS`).
    public var listenerStatistics: ListenerStatistics {
        get throws(WSPError) {
            var st = WSP_LISTENER_STATS_DATA()
            try core.ioctl(SIO_WSP_LISTENER_STATS, out: &st)
            return ListenerStatistics(st)
        }
    }

    /// Accepts one connection, asking `condition` first (nil: accept every request). A
    /// `.defer` answer throws `.tryAgain` and leaves the request first in line; `.reject`
    /// throws `.connectionRefused`. Blocks while no request waits (in blocking mode).
    public func accept(_ condition: (@Sendable (ConnectionRequest) -> Decision)? = nil)
        throws(WSPError) -> Accepted
    {
        try core.adopt(core.acceptOnce(condition).get())
    }

    /// A blocking connect; returns the callee data the server answered with.
    public func connect(to address: Address, callerData: [UInt8]? = nil,
                        calleeCapacity: Int = Int(WSP_DEFAULT_MAX_CALLEE_DATA))
        throws(WSPError) -> [UInt8]
    {
        guard (0...SocketOption<Int>.maxConnectData).contains(calleeCapacity) else {
            throw .invalid("calleeCapacity must be from 0 to \(SocketOption<Int>.maxConnectData) bytes, not \(calleeCapacity)")
        }
        var callee = [UInt8](repeating: 0, count: max(calleeCapacity, 1))
        let count = try callee.withUnsafeMutableBufferPointer { cb throws(WSPError) -> Int in
            var calleeBuf = WSABUF(len: UInt32(calleeCapacity),
                                   buf: UnsafeMutableRawPointer(cb.baseAddress!).assumingMemoryBound(to: CChar.self))
            try core.connect(to: address, callerData: callerData, qos: nil, callee: &calleeBuf)
            return Int(calleeBuf.len)
        }
        return Array(callee.prefix(count))
    }

    /// Sends bytes; returns how many were sent.
    @discardableResult
    public func send(_ bytes: [UInt8]) throws(WSPError) -> Int {
        try core.sendOnce(bytes[...]).get()
    }

    /// Receives at most `maxCount` bytes; an empty result means the peer closed.
    public func receive(maxCount: Int) throws(WSPError) -> [UInt8] {
        try core.receiveOnce(maxCount: maxCount).get()
    }
}

/// An accepted socket and its peer's address.
///
/// `@frozen` so that a program can move the socket out (`let socket = accepted.socket`), for
/// example into a task of its own: `Task { [socket = consume socket] in … }`.
@frozen public struct Accepted: ~Copyable, Sendable {
    public var socket: Socket
    public let peer: Address
}

/// A listener's counters, as `WSP_LISTENER_STATS` reports them.
public struct ListenerStatistics: Hashable, Sendable {
    /// Handed out by an accept.
    public var accepted: UInt64
    /// Refused by the condition function.
    public var rejected: UInt64
    /// `.defer` answers (one request may count several times; each element of
    /// ``Socket/requests`` counts one).
    public var deferred: UInt64
    /// Clients that gave up while queued or deferred.
    public var withdrawn: UInt64
    /// Connect-data requests not complete within the handshake deadline.
    public var timedOut: UInt64
    /// Refused because the backlog was full.
    public var backlogFull: UInt64
    /// Connect-data requests dropped as malformed.
    public var malformed: UInt64
    /// The backlog in force, after clamping.
    public var backlog: UInt32
    /// Requests waiting in the backlog now.
    public var queued: UInt32
    /// Requests held (``HeldRequest``); their answers count as accepted or rejected.
    public var held: UInt64
    /// Requests held now.
    public var holding: UInt32
    /// Holds refused because the listener held `WSP_HOLD_LIMIT` requests already.
    public var holdRefused: UInt64
    /// Held requests refused when the hold deadline passed.
    public var holdTimedOut: UInt64
    /// Refused because their caller data or QoS was longer than the listener takes.
    public var tooLong: UInt64
    /// Ended because the answer's callee data did not fit the client's callee buffer.
    public var undeliverable: UInt64
    /// Ended because the client's connect limit passed while the request was queued or held.
    public var expired: UInt64

    init(_ s: WSP_LISTENER_STATS_DATA) {
        accepted = s.accepted
        rejected = s.rejected
        deferred = s.deferred
        withdrawn = s.withdrawn
        timedOut = s.timed_out
        backlogFull = s.backlog_full
        malformed = s.malformed
        backlog = s.backlog
        queued = s.queued
        held = s.held
        holding = s.holding
        holdRefused = s.hold_refused
        holdTimedOut = s.hold_timed_out
        tooLong = s.too_long
        undeliverable = s.undeliverable
        expired = s.expired
    }
}
