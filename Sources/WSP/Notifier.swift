import CWSP
import Glibc

/// The network events one socket has reported and not yet handed to a waiter.
struct NetworkEvents: Sendable {
    /// `FD_…` bits.
    var events: Int32 = 0
    /// The error code of each event, indexed by `FD_…_BIT`; an entry is meaningful while its
    /// bit is set.
    var errors = InlineArray<10, Int32>(repeating: 0) // FD_MAX_EVENTS, kept inline: no allocation per event
}

/// Where tasks wait for one socket's network events.
///
/// The provider reports each event as a message (`lpWSPAsyncSelect`); ``Notifier`` hands it
/// to ``post(event:error:)``, which resumes the tasks waiting for it. Every async call tries
/// its provider call first and waits only after `WSAEWOULDBLOCK`, and that failed call is
/// what re-enables the event, so an event reported before anybody waits is kept for the next
/// waiter and an event lost before the first try costs nothing.
///
/// A waiter takes the events it was woken for, all of them: which events the provider
/// raises again is the provider's rule, not repeated here. That holds for the events that
/// happen once (`FD_CONNECT`, `FD_CLOSE`) too, because nothing waits without trying first:
/// after the close, a receive returns the end of the stream and a send its error without
/// waiting. Waiters woken by one event all see it.
final class EventRegistration: Sendable {
    let socket: SOCKET

    private struct Waiter {
        let id: UInt64
        let mask: Int32
        let continuation: UnsafeContinuation<Result<NetworkEvents, WSPError>, Never>
    }
    private struct State {
        var fired = NetworkEvents()
        /// The waiters: usually one, kept inline (no array to allocate per wait).
        var first: Waiter?
        var others: [Waiter] = []
        var nextWaiter: UInt64 = 0
        var closed = false

        mutating func add(_ w: Waiter) {
            if first == nil { first = w } else { others.append(w) }
        }

        mutating func remove(id: UInt64) -> Waiter? {
            if let w = first, w.id == id {
                first = nil
                return w
            }
            guard let i = others.firstIndex(where: { $0.id == id }) else { return nil }
            return others.remove(at: i)
        }
    }
    private let state = Locked(State())

    init(socket: SOCKET) {
        self.socket = socket
    }

    /// Suspends until one of `mask`'s events has been reported (at once when one already
    /// was). Fails with `.operationAborted` when the task is cancelled and `.interrupted` when
    /// the socket is closed.
    func wait(for mask: Int32) async -> Result<NetworkEvents, WSPError> {
        let id = state.withLock { s in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withUnsafeContinuation { continuation in
                let now: Result<NetworkEvents, WSPError>? = state.withLock { s in
                    if s.closed { return .failure(.interrupted) }
                    // Checked under the lock the cancellation handler takes: a cancellation
                    // either happened before (seen here) or finds the waiter in the list.
                    if Task.isCancelled { return .failure(.operationAborted) }
                    if s.fired.events & mask != 0 {
                        let fired = s.fired
                        s.fired.events &= ~mask
                        return .success(fired)
                    }
                    s.add(Waiter(id: id, mask: mask, continuation: continuation))
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.remove(id: id) }
            waiter?.continuation.resume(returning: .failure(.operationAborted))
        }
    }

    /// Records one event (an `FD_…` bit) and its error code, and resumes the tasks waiting
    /// for it. Called from the provider's upcall (possibly with the provider's socket lock
    /// held) or from the notifier's thread: it takes only this registration's lock and
    /// resumes continuations, which never runs their tasks here.
    func post(event: Int32, error: Int32) {
        var first: Waiter? = nil
        var others: [Waiter] = []
        let fired = state.withLock { s -> NetworkEvents? in
            guard !s.closed else { return nil }
            s.fired.events |= event
            let bit = event.trailingZeroBitCount
            if bit < s.fired.errors.count { s.fired.errors[bit] = error }
            let fired = s.fired
            var consumed: Int32 = 0
            if let w = s.first, w.mask & fired.events != 0 {
                first = w
                s.first = nil
                consumed |= w.mask
            }
            if !s.others.isEmpty {
                s.others.removeAll { w in
                    guard w.mask & fired.events != 0 else { return false }
                    others.append(w)
                    consumed |= w.mask
                    return true
                }
            }
            s.fired.events &= ~consumed
            return fired
        }
        guard let fired else { return }
        first?.continuation.resume(returning: .success(fired))
        for w in others { w.continuation.resume(returning: .success(fired)) }
    }

    /// Ends every wait with `.interrupted`; later waits fail at once.
    func close() {
        let (first, others) = state.withLock { s in
            s.closed = true
            defer { s.first = nil; s.others = [] }
            return (s.first, s.others)
        }
        first?.continuation.resume(returning: .failure(.interrupted))
        for w in others { w.continuation.resume(returning: .failure(.interrupted)) }
    }
}

/// How the provider's network events reach waiting tasks: one process-wide message queue and
/// an upcall that short-circuits it.
///
/// Every async socket is registered with `lpWSPAsyncSelect` on the same window: a built-in
/// message queue (`WSPCreateMessageQueue`) this module creates once. The upcall table that
/// ``Provider`` passes to `WSPStartup` replaces one member, `lpWPUPostMessage`: a message for
/// that queue is delivered at once, on the provider's thread, to the socket's
/// ``EventRegistration`` (found by the socket handle the message carries), which resumes the
/// waiting task — no thread in between, no descriptor per socket. Messages for any other
/// window go to the built-in `WSPPostMessage`, so C code in the same process that uses
/// message queues behaves exactly as with the built-in table.
///
/// Why a real queue rather than an invented window handle: the provider has one upcall table
/// in force per process, and a later `WSPStartup` with another table (a C user passing a
/// zeroed one, asking for the built-in upcalls) replaces ours. The built-in
/// `WSPPostMessage` then appends our sockets' messages to the queue, and a thread of this
/// module that waits on it (`WSPGetMessage`) delivers them the same way: slower by one
/// hand-off, never lost. The next ``Provider`` puts our table back. A C program that
/// installs its *own* `lpWPUPostMessage` must pass messages for windows it does not know to
/// `WSPPostMessage`, or async Swift calls in the same process stop being woken.
///
/// The upcall runs on whichever thread raises the event, sometimes with the provider's
/// socket lock held, so it calls nothing in the provider: it takes the registry's lock and
/// then the registration's, and resumes continuations (which only schedules their tasks).
/// Nothing here calls the provider while holding either lock.
final class Notifier: Sendable {
    static let shared = Notifier()

    /// The message number our registrations use.
    static let message = UInt32(0x5753_5000)

    /// Every event a registered socket is selected for. (A listener is selected for
    /// `FD_ACCEPT` alone, and only while an accept waits: `SocketCore.waitForAccept`.)
    static let mask = Int32(FD_READ | FD_WRITE | FD_ACCEPT | FD_CONNECT | FD_CLOSE)

    /// The queue's handle, as its bit pattern (a C `HWND` is a raw pointer, not `Sendable`;
    /// the handle is only a name the provider checks on every use).
    let queueBits: UInt
    var queue: HWND { HWND(bitPattern: queueBits)! }

    private let registrations = Locked([SOCKET: EventRegistration]())

    private init() {
        guard let queue = WSPCreateMessageQueue() else {
            fatalError("WSP: cannot create the message queue (\(WSAGetLastError()))")
        }
        queueBits = UInt(bitPattern: queue)
        var thread = pthread_t()
        let me = Unmanaged.passRetained(self).toOpaque() // the thread's reference, never released
        let rc = pthread_create(&thread, nil, { arg in
            Unmanaged<Notifier>.fromOpaque(arg!).takeUnretainedValue().drainQueue()
            return nil
        }, me)
        precondition(rc == 0, "WSP: cannot start the notifier thread (\(rc))")
        pthread_detach(thread)
    }

    /// The upcall table ``Provider`` starts the provider with: the built-in upcalls, except
    /// `lpWPUPostMessage`. Creates the notifier first, so that an upcall never has to.
    static var upcalls: WSPUPCALLTABLE {
        _ = shared
        var table = WSPUPCALLTABLE()
        table.lpWPUPostMessage = { hwnd, msg, wParam, lParam in
            let notifier = Notifier.shared
            guard UInt(bitPattern: hwnd) == notifier.queueBits, msg == Notifier.message else {
                return WSPPostMessage(hwnd, msg, wParam, lParam)
            }
            notifier.deliver(socket: wParam, reply: lParam)
            return 1
        }
        return table
    }

    /// The thread that reads the queue while another table is in force (see above). With
    /// ours in force nothing is ever posted to it, and it sleeps.
    private func drainQueue() {
        var msg = WSPMSG()
        while WSPGetMessage(queue, &msg, WSA_INFINITE) >= 0 {
            if msg.message == Notifier.message { deliver(socket: msg.wParam, reply: msg.lParam) }
        }
    }

    /// One `WSAMAKESELECTREPLY(event, error)` for `socket`. A socket with no registration
    /// (closed, or an accepted socket not used asynchronously yet) drops it.
    private func deliver(socket: SOCKET, reply: LPARAM) {
        guard let reg = registrations.withLock({ $0[socket] }) else { return }
        reg.post(event: Int32(reply & 0xFFFF), error: Int32((reply >> 16) & 0xFFFF))
    }

    /// Makes `socket`'s registration and asks the provider to post `events` (`FD_…` bits;
    /// 0: none yet) here.
    func register(provider: Provider, socket: SOCKET, events: Int32) throws(WSPError)
        -> EventRegistration
    {
        let reg = EventRegistration(socket: socket)
        // In the registry first: the select may report events at once.
        registrations.withLock { $0[socket] = reg }
        if events != 0 {
            do throws(WSPError) {
                try select(provider: provider, socket: socket, events: events)
            } catch {
                unregister(reg)
                throw error
            }
        }
        return reg
    }

    /// Asks the provider to post `events` for `socket` here from now on (replacing what it
    /// was selected for); conditions that already hold are posted at once.
    func select(provider: Provider, socket: SOCKET, events: Int32) throws(WSPError) {
        try provider.table.asyncSelect(socket, window: queue, message: Notifier.message,
                                       events: events)
    }

    /// Forgets `reg` and ends its waits. Messages for its socket that are still on their way
    /// find no registration and are dropped.
    func unregister(_ reg: EventRegistration) {
        registrations.withLock { r in
            if r[reg.socket] === reg { r[reg.socket] = nil }
        }
        reg.close()
    }
}
