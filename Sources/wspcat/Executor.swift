import Glibc
import WSP

/// One thread that runs wspcat's async work (the accept loop and what it awaits).
///
/// Why not Swift's global pool: on Linux the pool is libdispatch's, and once a pool thread
/// has run anything libdispatch's manager thread wakes every second for the rest of the
/// process. An idle `wspcat listen` should not wake at all; with every task preferring this
/// executor (`Task(executorPreference:)`), the pool is never used, and this thread sleeps on a
/// condition variable until the provider's upcall resumes a task.
final class LoopExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked: `jobs` is guarded by `mutex`.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var jobs: [UnownedJob] = []

    static let shared = LoopExecutor()

    private init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(cond, nil)
        // The executor lives as long as the process: the thread's reference is never released.
        Thread.detach { [self] in run() }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        pthread_mutex_lock(mutex)
        jobs.append(job)
        pthread_cond_signal(cond)
        pthread_mutex_unlock(mutex)
    }

    private func run() {
        while true {
            pthread_mutex_lock(mutex)
            while jobs.isEmpty { pthread_cond_wait(cond, mutex) }
            let batch = jobs
            jobs.removeAll(keepingCapacity: true)
            pthread_mutex_unlock(mutex)
            for job in batch { job.runSynchronously(on: asUnownedTaskExecutor()) }
        }
    }
}

/// Runs `body` as a task on the loop executor and blocks the calling thread until it ends.
/// Called from `main`'s thread only (never from the loop's own thread, which it would
/// deadlock, nor from a pool thread).
func runOnLoop<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let done = Locked<Result<T, any Error>?>(nil)
    let finished = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
    sem_init(finished, 0, 0)
    defer { sem_destroy(finished); finished.deallocate() }
    let signal = UInt(bitPattern: finished)
    Task(executorPreference: LoopExecutor.shared) {
        let result: Result<T, any Error>
        do { result = .success(try await body()) } catch { result = .failure(error) }
        done.withLock { $0 = result }
        sem_post(UnsafeMutablePointer<sem_t>(bitPattern: signal)!)
    }
    while sem_wait(finished) != 0 && errno == EINTR {}
    return try done.withLock { $0! }.get()
}
