import Glibc

/// A value guarded by a pthread mutex.
///
/// Used instead of `Synchronization.Mutex` because ThreadSanitizer sees pthread mutexes (it
/// intercepts them) but not the futex-based `Mutex` of the uninstrumented standard library,
/// which made every access it guards look like a race: the Swift suite runs under
/// ThreadSanitizer in CI (`make check-swift-tsan`), and its reports must mean something.
/// `package`: wspcat uses it too, for the same reason.
///
/// The mutex and the value share one allocation (a `ManagedBuffer`: the mutex in the
/// header, the value as its one element), and the value is reached through a pointer, so a
/// `Locked` costs one allocation and `withLock` no dynamic exclusivity check: every socket
/// and every async wait makes one (`SocketCore`, `EventRegistration`).
package struct Locked<Value>: @unchecked Sendable {
    // @unchecked: the value is only touched inside withLock, under the mutex. The mutex comes
    // first (the header): a zero-sized value (`Locked(())`) laid out before it would share
    // its address, and ThreadSanitizer would take the mutex's accesses for a race on it.
    private final class Storage: ManagedBuffer<pthread_mutex_t, Value> {
        deinit {
            withUnsafeMutablePointers { mutex, value in
                _ = value.deinitialize(count: 1)
                _ = pthread_mutex_destroy(mutex)
            }
        }
    }
    private let storage: Storage

    package init(_ value: Value) {
        let buffer = Storage.create(minimumCapacity: 1) { _ in pthread_mutex_t() }
        storage = unsafeDowncast(buffer, to: Storage.self)
        storage.withUnsafeMutablePointers { mutex, element in
            pthread_mutex_init(mutex, nil)
            element.initialize(to: value)
        }
    }

    package func withLock<R, E: Error>(_ body: (inout Value) throws(E) -> R) throws(E) -> R {
        try storage.withUnsafeMutablePointers { mutex, value throws(E) -> R in
            pthread_mutex_lock(mutex)
            defer { pthread_mutex_unlock(mutex) }
            return try body(&value.pointee)
        }
    }
}
