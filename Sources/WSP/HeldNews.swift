import CWSP
import Glibc

// How a held request's end reaches Swift: the provider's news of held requests that ended
// without an answer (WSP_HELD_EVENT, WSPHeldNews in wsp.h), read by one thread of this module
// and handed to each request's `HeldState`, which resumes the tasks awaiting its
// `withdrawal`. Nothing polls: the thread sleeps in the event wait until the provider sets it.

/// How a held request stopped being held (``Withdrawal/wait()``).
public enum HeldEnd: Sendable, Hashable, CustomStringConvertible {
    /// The program answered it: accepted, rejected, released, or dropped (which rejects).
    case answered
    /// Its client gave up (closed its connect, or broke the protocol) while it was held. An
    /// answer throws ``WSPError/withdrawn``.
    case withdrawn
    /// The listener's hold deadline (`WSP_HOLD_DEADLINE`) or the client's own connect limit
    /// passed; the provider refused the client. An answer throws ``WSPError/timedOut``.
    case timedOut
    /// The listener was closed; the client was refused. An answer throws
    /// ``WSPError/interrupted``.
    case listenerClosed

    /// The end an answer's code reports (`WSAECONNRESET`, `WSAETIMEDOUT`, `WSAEINTR`), or nil
    /// for any other code.
    init?(code: Int32) {
        switch code {
        case WSAECONNRESET: self = .withdrawn
        case WSAETIMEDOUT: self = .timedOut
        case WSAEINTR: self = .listenerClosed
        default: return nil
        }
    }

    /// What an answer given after this end throws; nil for ``answered``.
    public var error: WSPError? {
        switch self {
        case .answered: nil
        case .withdrawn: .withdrawn
        case .timedOut:
            WSPError(code: WSAETIMEDOUT,
                     detail: "the request was held past the hold deadline or the client's connect limit; the client was refused")
        case .listenerClosed:
            WSPError(code: WSAEINTR, detail: "the listener was closed while the request was held")
        }
    }

    public var description: String {
        switch self {
        case .answered: "answered"
        case .withdrawn: "the client withdrew"
        case .timedOut: "the hold deadline or the client's connect limit passed"
        case .listenerClosed: "the listener closed"
        }
    }
}

extension WSPError {
    /// `WSAECONNRESET` from an answer to a held request: its client withdrew (gave up, or
    /// broke the protocol) while it was held. The same code as ``connectionReset``, so either
    /// name matches it; this one says what it means for a held request.
    public static let withdrawn = WSPError(
        code: WSAECONNRESET, detail: "the client withdrew its request while it was held")
}

/// The notice of a held request's end, to await from any task (``HeldRequest/withdrawal``):
/// `Sendable` and copyable, unlike the request, so that a task racing a slow decision can
/// learn that the client has gone.
///
/// ```swift
/// let held = try await listener.hold()
/// let withdrawal = held.withdrawal
/// let watcher = Task {
///     if try await withdrawal.wait() == .withdrawn { lookup.cancel() } // the client has gone
/// }
/// ```
public struct Withdrawal: Sendable {
    let state: HeldState

    /// Suspends until the request is no longer held and says how it ended: its client
    /// withdrew, the hold deadline passed, the listener closed — or ``HeldEnd/answered`` once
    /// the program has answered it, so a task awaiting this never outlives the request.
    /// Returns at once when that has happened already. A cancelled task stops waiting and
    /// throws ``WSPError/operationAborted``; the request is left as it was.
    public func wait() async throws(WSPError) -> HeldEnd {
        try await state.wait()
    }

    /// How the request ended, or nil while it is held (as far as the provider's news has
    /// arrived).
    public var end: HeldEnd? { state.end }
}

/// One held request's handle and fate. Every answer to it — the program's, or the one that
/// learns why it ended unanswered — runs in ``answer(_:)`` under this object's lock, so the
/// first one decides its ``HeldEnd`` and the others see that end instead of calling the
/// provider. The provider call runs under the lock: the provider's upcalls never take it.
final class HeldState: Sendable {
    let handle: WSPHELD
    let functions: HeldFunctions
    let news: HeldNews

    private struct State {
        var end: HeldEnd?
        /// Whether a ``HeldRequest`` value answers it when dropped (not while it is moved
        /// between tasks as ``HeldParts``).
        var owned = true
        var waiters: [UInt64: UnsafeContinuation<Result<HeldEnd, WSPError>, Never>] = [:]
        var nextWaiter: UInt64 = 0
    }
    private let state = Locked(State())

    init(handle: WSPHELD, functions: HeldFunctions, news: HeldNews) {
        self.handle = handle
        self.functions = functions
        self.news = news
    }

    var end: HeldEnd? { state.withLock { $0.end } }

    var owned: Bool {
        get { state.withLock { $0.owned } }
        set { state.withLock { $0.owned = newValue } }
    }

    /// Gives the request its one answer: `call` is the provider's answer function, returning
    /// 0, or `SOCKET_ERROR` with the code in its argument. Throws that failure: the request's
    /// end (``HeldEnd/error``) when it had ended unanswered, else the provider's code. A
    /// request that ended before (or was answered) is not answered again.
    func answer(_ call: (inout Int32) -> Int32) throws(WSPError) {
        typealias Waiter = UnsafeContinuation<Result<HeldEnd, WSPError>, Never>
        let (failure, end, waiters) = state.withLock { s -> (WSPError?, HeldEnd, [Waiter]) in
            if let end = s.end { return (end.error ?? .invalidHandle, end, []) }
            var code: Int32 = 0
            var failure: WSPError? = call(&code) == 0 ? nil : WSPError(code: code)
            let ended = failure.flatMap { HeldEnd(code: $0.code) }
            if let ended {
                failure = ended.error
            } else if failure != nil {
                // The program's mistake (callee data over the listener's limit, a reason
                // the provider does not know) may leave the request held; this was its one
                // answer, so its client is not left waiting: refuse it.
                var e: Int32 = 0
                _ = functions.reject(handle, 0, &e)
            }
            let end = ended ?? .answered
            s.end = end
            defer { s.waiters = [:] }
            return (failure, end, Array(s.waiters.values))
        }
        news.forget(handle)
        for w in waiters { w.resume(returning: .success(end)) }
        if let failure { throw failure }
    }

    /// The provider listed the request as ended without an answer (or its listener closed):
    /// an answer learns why and retires the handle.
    func ended() {
        try? answer { code in functions.reject(handle, 0, &code) }
    }

    /// Suspends until the request has an end (``Withdrawal/wait()``).
    func wait() async throws(WSPError) -> HeldEnd {
        let id = state.withLock { s in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        return try await withTaskCancellationHandler {
            await withUnsafeContinuation { continuation in
                let now: Result<HeldEnd, WSPError>? = state.withLock { s in
                    if let end = s.end { return .success(end) }
                    // Checked under the lock the cancellation handler takes: a cancellation
                    // either happened before (seen here) or finds the waiter in the list.
                    if Task.isCancelled { return .failure(.operationAborted) }
                    s.waiters[id] = continuation
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?
                .resume(returning: .failure(.operationAborted))
        }.get()
    }
}

/// A listener's held requests, by handle, so that the provider's news about a handle reaches
/// its ``HeldState``. Made when the listener first holds (``SocketCore/heldNews()``), which
/// points the listener's `WSP_HELD_EVENT` at the reader's event.
final class HeldNews: Sendable {
    let listener: SOCKET
    let functions: HeldFunctions

    private struct State {
        var requests: [WSPHELD: HeldState] = [:]
        /// Holds under way: their handle may be in the news before they are registered.
        var holding = 0
        /// Handles the news listed while no request had them, kept while a hold is under way.
        var unclaimed: Set<WSPHELD> = []
        var closed = false
    }
    private let state = Locked(State())

    init(listener: SOCKET, functions: HeldFunctions) {
        self.listener = listener
        self.functions = functions
    }

    /// Brackets one `WSPAcceptHold`: `register` with its request when it held one, else nil.
    func beginHold() { state.withLock { $0.holding += 1 } }

    func register(_ held: HeldState?) {
        let endNow = state.withLock { s -> Bool in
            s.holding -= 1
            defer { if s.holding == 0 { s.unclaimed = [] } } // the rest answered meanwhile
            guard let held else { return false }
            if s.closed || s.unclaimed.remove(held.handle) != nil { return true }
            s.requests[held.handle] = held
            return false
        }
        if endNow { held?.ended() }
    }

    func forget(_ handle: WSPHELD) {
        state.withLock { _ = $0.requests.removeValue(forKey: handle) }
    }

    /// Reads the listener's news until none is left and ends each request listed. On the
    /// reader's thread. A closed listener has no news (`WSAENOTSOCK`): ``close()`` ends its
    /// requests.
    func read() {
        var batch = [WSPHELD](repeating: 0, count: 64)
        while true {
            var count: UInt32 = 0
            var err: Int32 = 0
            let rc = batch.withUnsafeMutableBufferPointer { b in
                functions.news(listener, b.baseAddress, UInt32(b.count), &count, &err)
            }
            if rc != 0 || count == 0 { return }
            let listed = state.withLock { s in
                batch[..<Int(count)].compactMap { handle -> HeldState? in
                    if let held = s.requests[handle] { return held }
                    if s.holding > 0 { s.unclaimed.insert(handle) }
                    return nil
                }
            }
            for held in listed { held.ended() }
        }
    }

    /// The listener is closed: every request it held has ended (`WSAEINTR`).
    func close() {
        let held = state.withLock { s in
            s.closed = true
            defer { s.requests = [:]; s.unclaimed = [] }
            return Array(s.requests.values)
        }
        for h in held { h.ended() }
        HeldNewsReader.remove(self)
    }
}

/// The thread that waits for news: one event object for the process, which every listener
/// that holds names as its `WSP_HELD_EVENT`. When the provider sets it the thread resets it
/// and reads the news of each such listener (the provider's documented order: reset, then
/// read until none is left). Withdrawals are rare next to requests, so the hand-off through a
/// thread costs little; in exchange the thread may call the provider freely, which an upcall
/// (made, on a listener's close, with its lock held) could not.
///
/// Started by the first hold and kept for the life of the process, asleep while nothing
/// ends. A C program in the same process that installs its own `lpWPUSetEvent` must pass
/// events it did not create to `WSASetEvent`, or held requests' withdrawals go unnoticed.
final class HeldNewsReader: Sendable {
    /// The event's handle, as its bit pattern (a C `HANDLE` is a raw pointer).
    let eventBits: UInt
    var event: WSAEVENT { WSAEVENT(bitPattern: eventBits)! }

    private let listeners = Locked([ObjectIdentifier: HeldNews]())
    private static let started = Locked<HeldNewsReader?>(nil)

    private init(eventBits: UInt) {
        self.eventBits = eventBits
    }

    /// The reader, started on first use; registers `news` with it.
    static func add(_ news: HeldNews) throws(WSPError) -> HeldNewsReader {
        let reader = try started.withLock { r throws(WSPError) -> HeldNewsReader in
            if let r { return r }
            guard let event = WSACreateEvent() else { throw WSPError(code: WSAGetLastError()) }
            let reader = HeldNewsReader(eventBits: UInt(bitPattern: event))
            var thread = pthread_t()
            let me = Unmanaged.passRetained(reader).toOpaque() // the thread's, never released
            let rc = pthread_create(&thread, nil, { arg in
                Unmanaged<HeldNewsReader>.fromOpaque(arg!).takeUnretainedValue().run()
                return nil
            }, me)
            guard rc == 0 else {
                Unmanaged<HeldNewsReader>.fromOpaque(me).release()
                _ = WSACloseEvent(event)
                throw WSPError(code: WSAENOBUFS)
            }
            pthread_detach(thread)
            r = reader
            return reader
        }
        reader.listeners.withLock { $0[ObjectIdentifier(news)] = news }
        return reader
    }

    static func remove(_ news: HeldNews) {
        started.withLock { $0 }?.listeners.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(news)) }
    }

    private func run() {
        var events: [WSAEVENT?] = [event]
        while WSAWaitForMultipleEvents(1, &events, 0, WSA_INFINITE, 0) == WSA_WAIT_EVENT_0 {
            _ = WSAResetEvent(event)
            for news in listeners.withLock({ Array($0.values) }) { news.read() }
        }
    }
}
