import CWSP

/// A task executor that runs its jobs on the provider's event thread (`WSPRunOnEventThread`),
/// the thread whose upcalls resume tasks waiting for network events.
///
/// **When to use it.** A task that prefers it
/// (`Task(executorPreference: EventThreadExecutor.shared)`,
/// `group.addTask(executorPreference:)`; child tasks inherit the preference) is resumed on the
/// thread that saw its event, right after that event, instead of waking a thread of Swift's
/// pool: for a server or client that spends its time in async accepts, connects, sends and
/// receives, that is two thread hand-offs fewer per connection. Keep work that computes or
/// blocks on the default executor.
///
/// **The rule: a job here must not block.** Every socket of the process waits while one runs
/// (SwiftNIO's event-loop rule). The provider enforces its part: there, a call that would wait
/// throws ``WSPError/wouldBlock`` at once instead (a synchronous accept with nothing waiting,
/// a blocking connect, a receive with nothing to read); the async calls work as everywhere.
/// Other blocking (locks held long, `sleep`, long computation) is the program's to avoid.
///
/// Without a started provider (no live ``Provider``), or once the last one is released,
/// jobs run on Swift's global concurrent executor instead: no job is lost. So start the
/// ``Provider`` before the tasks meant to run here. Releasing the last
/// ``Provider`` inside a task on this executor is fine: the provider stops once that job
/// returns, and the task carries on on the global executor.
///
/// The executor holds no state: it only hands jobs to the provider, which runs each exactly
/// once.
public final class EventThreadExecutor: TaskExecutor {
    /// The one event thread of the process.
    public static let shared = EventThreadExecutor()

    private init() {}

    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        // An UnownedJob is one job pointer: it travels as the C job's context and comes back
        // in `runJob`, which runs it exactly once (or here, when the provider refuses it).
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
