import CWSP

/// A task executor that runs its jobs on the provider's event thread (`WSPRunOnEventThread`),
/// the thread whose upcalls resume tasks waiting for network events.
///
/// A task that prefers it (`Task(executorPreference: EventThreadExecutor.shared)`,
/// `group.addTask(executorPreference:)`) is resumed on the thread that saw its event, right
/// after that event, instead of waking a thread of Swift's pool: per connection that is two
/// thread hand-offs fewer for an async connect and an async accept. The cost is SwiftNIO's
/// event-loop rule: a job on this executor holds up every socket of the process while it
/// runs, so it must not block (no synchronous provider calls that wait, no long
/// computation). Without a started provider (no live ``Provider``) jobs run on the global
/// concurrent executor instead.
public final class EventThreadExecutor: TaskExecutor {
    /// The one event thread of the process.
    public static let shared = EventThreadExecutor()

    private init() {}

    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        let context = unsafeBitCast(unowned, to: UnsafeMutableRawPointer.self)
        if WSPRunOnEventThread(runJob, context) != 0 {
            globalConcurrentExecutor.enqueue(unowned)
        }
    }
}

private func runJob(_ context: UnsafeMutableRawPointer?) {
    let job = unsafeBitCast(context!, to: UnownedJob.self)
    job.runSynchronously(on: EventThreadExecutor.shared.asUnownedTaskExecutor())
}
