import Glibc

/// A value guarded by a pthread mutex.
///
/// Used instead of `Synchronization.Mutex` because ThreadSanitizer sees pthread mutexes (it
/// intercepts them) but not the futex-based `Mutex` of the uninstrumented standard library,
/// which made every access it guards look like a race: the Swift suite runs under
/// ThreadSanitizer in CI (`make check-swift-tsan`), and its reports must mean something.
/// `package`: wspcat uses it too, for the same reason.
package final class Locked<Value>: @unchecked Sendable {
    // @unchecked: `value` is only touched inside withLock, under `mutex`. The mutex comes
    // first: a zero-sized `value` (`Locked(())`) laid out before it would share its address,
    // and ThreadSanitizer would take the unlocked read of `mutex` for a race on `value`.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    package init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    package func withLock<R, E: Error>(_ body: (inout Value) throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
