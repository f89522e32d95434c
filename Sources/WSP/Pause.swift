import Glibc

/// Waits for a duration on a thread of its own rather than with `Task.sleep`: the global
/// executor's timers run on libdispatch's manager thread, and once that has started it wakes
/// every second for the life of the process — a cost an idle server should not pay for an
/// occasional deferral. The waiting thread exists only while the pause lasts; cancelling the
/// task ends the pause at once.
enum Pause {
    /// Returns after `duration`, or throws `.operationAborted` when the task is cancelled.
    static func sleep(for duration: Duration) async throws(WSPError) {
        let pause = Waiter(duration)
        let finished: Bool = await withTaskCancellationHandler {
            await withUnsafeContinuation { continuation in
                pause.start(continuation)
            }
        } onCancel: {
            pause.cancel()
        }
        if !finished || Task.isCancelled { throw .operationAborted }
    }

    private final class Waiter: @unchecked Sendable {
        // @unchecked: every field is guarded by `mutex`.
        private var mutex = pthread_mutex_t()
        private var cond = pthread_cond_t()
        private var cancelled = false
        private let deadline: timespec
        private var continuation: UnsafeContinuation<Bool, Never>?

        init(_ duration: Duration) {
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            let (s, atto) = duration.components
            var nanos = Int64(now.tv_nsec) + max(0, atto / 1_000_000_000)
            var seconds = Int64(now.tv_sec) + max(0, s) + nanos / 1_000_000_000
            nanos %= 1_000_000_000
            if s < 0 { seconds = Int64(now.tv_sec); nanos = Int64(now.tv_nsec) }
            deadline = timespec(tv_sec: Int(seconds), tv_nsec: Int(nanos))
            pthread_mutex_init(&mutex, nil)
            var attributes = pthread_condattr_t()
            pthread_condattr_init(&attributes)
            pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
            pthread_cond_init(&cond, &attributes)
            pthread_condattr_destroy(&attributes)
        }

        deinit {
            pthread_cond_destroy(&cond)
            pthread_mutex_destroy(&mutex)
        }

        func start(_ continuation: UnsafeContinuation<Bool, Never>) {
            self.continuation = continuation
            var thread = pthread_t()
            let me = Unmanaged.passRetained(self).toOpaque()
            if pthread_create(&thread, nil, { arg in
                Unmanaged<Waiter>.fromOpaque(arg!).takeRetainedValue().wait()
                return nil
            }, me) == 0 {
                pthread_detach(thread)
            } else {
                Unmanaged<Waiter>.fromOpaque(me).release()
                self.continuation = nil
                continuation.resume(returning: true) // no thread: a pause of nothing
            }
        }

        private func wait() {
            var deadline = self.deadline
            pthread_mutex_lock(&mutex)
            while !cancelled && pthread_cond_timedwait(&cond, &mutex, &deadline) != ETIMEDOUT {}
            let finished = !cancelled
            let continuation = self.continuation
            self.continuation = nil
            pthread_mutex_unlock(&mutex)
            continuation?.resume(returning: finished)
        }

        func cancel() {
            pthread_mutex_lock(&mutex)
            cancelled = true
            pthread_cond_signal(&cond)
            pthread_mutex_unlock(&mutex)
        }
    }
}
