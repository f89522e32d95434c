/* The reactor: one epoll thread that does the provider's background work (reading
 * connect-data handshakes, telling waiting clients "pending", driving non-blocking connects
 * and network-event notification), so that none of it runs on an application thread.
 *
 * Removal is the delicate part: epoll_wait may already have returned an event for an item
 * that another thread removes a moment later. Removed items therefore become zombies, and the
 * reactor releases them only between batches, when no returned event can still name them.
 *
 * Timers share one timerfd, armed for the earliest due time whenever a timer gets earlier
 * than what it is armed for: setting a timer (every non-blocking connect sets one) costs no
 * wake-up of the reactor thread, and usually no system call at all, since new timers tend to
 * be due later than the armed one. Nor is it disarmed whenever a timer is cleared (a
 * connection's timers come and go with it, mostly on this thread): with no timer left, the
 * thread sleeps STALE_GRACE_MS before it disarms the timerfd, and only if nothing came
 * meanwhile. A busy reactor never pays for that, and an idle one wakes once, right after its
 * last event, instead of seconds later when a forgotten timer was due. Another thread that
 * clears the last timer while the reactor sleeps disarms the timerfd itself, unless it was
 * due within STALE_NEAR_MS anyway.
 *
 * Jobs (WSPRunOnEventThread) are an application's work run on this thread: an async runtime
 * whose tasks this thread's upcalls resume runs them here, right after the event, instead of
 * waking a thread of its own. They run after each item, when no provider lock is held. A job
 * may end the provider (the last lpWSPCleanup): the thread cannot join itself, so the loop
 * ends when the job returns and the thread closes its own descriptors on the way out (and
 * detaches, unless a stop elsewhere waits to join it); a start before then revives it. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define BATCH 64
#define STALE_GRACE_MS 10
#define STALE_NEAR_MS 50

static pthread_mutex_t reactor_lock = PTHREAD_MUTEX_INITIALIZER; /* start/stop, timers, zombies */
static int users;          /* wsp_reactor_start count */
static bool running;       /* the thread exists */
/* Made by the start that makes the thread, before anything can use them; they mean nothing
 * once it has closed them (or a start failed): only the next such start reads them again. */
static int epfd, wakefd, timerfd;
/* When timerfd fires (0: disarmed), and how many timers are set (due_ms != 0). Both
 * written under reactor_lock; the loop reads them without it to choose how long to sleep. */
static _Atomic uint64_t timer_armed_ms;
static atomic_int timers_set;
static pthread_t thread;
static _Thread_local int on_reactor_thread;
static atomic_int stopping;
static struct wsp_reactor_item *zombies;
static struct wsp_reactor_item *timers; /* items with a timer, unordered */
static _Thread_local struct wsp_reactor_task *tasks; /* wsp_reactor_after; reactor thread */
static atomic_uint wakes; /* wake-ups written: tests check that quiet removals make none */
static atomic_uint timer_passes; /* run_timers calls: tests check that timers due together
                                  * fire in one */
/* The end of a stop (reactor_lock): the thread broadcasts exit_cond when it has exited its
 * loop (running false) or a start revived it (stopping 0). */
static pthread_cond_t exit_cond = PTHREAD_COND_INITIALIZER;
static int stoppers;          /* stops waiting on exit_cond: the thread leaves itself to them */
static bool to_join;          /* exited_thread has exited its loop and waits to be joined */
static pthread_t exited_thread;

struct job {
    LPWSPJOBPROC fn;
    void *context;
};
static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct job *jobs; /* waiting, in order */
static size_t jobs_len, jobs_cap;
static atomic_size_t jobs_waiting; /* jobs_len, read without the lock after every item */
static bool jobs_open;             /* the reactor takes jobs: from start until stop (set under
                                    * reactor_lock too) */
static struct job *spare;          /* reactor thread: the last batch's array, for the next */
static size_t spare_cap;

static void wake(void) {
    atomic_fetch_add_explicit(&wakes, 1, memory_order_relaxed);
    uint64_t one = 1;
    ssize_t n = write(wakefd, &one, sizeof one);
    (void)n; /* a full counter still wakes the reactor */
}

/* reactor_lock held. Arms timerfd for due_ms (0: disarms it). A due time in whole
 * milliseconds is all zero only when it is 0, and an all-zero time is what disarms. */
static void arm_timerfd(uint64_t due_ms) {
    struct itimerspec t = {{0, 0}, {(time_t)(due_ms / 1000u), (long)(due_ms % 1000u) * 1000000L}};
    timerfd_settime(timerfd, TFD_TIMER_ABSTIME, &t, NULL);
    timer_armed_ms = due_ms;
}

/* reactor_lock held. Arms timerfd for the earliest timer, after timerfd fired. */
static void rearm_timerfd(void) {
    uint64_t earliest = 0;
    for (struct wsp_reactor_item *it = timers; it; it = it->timer_next) {
        uint64_t due = atomic_load(&it->due_ms);
        if (due && (!earliest || due < earliest))
            earliest = due;
    }
    arm_timerfd(earliest);
}

/* Armed with no timer set: what a cleared or later timer leaves behind. */
static int stale_timerfd(void) {
    return atomic_load_explicit(&timers_set, memory_order_relaxed) == 0 &&
           atomic_load_explicit(&timer_armed_ms, memory_order_relaxed) != 0;
}

static void disarm_if_stale(void) {
    pthread_mutex_lock(&reactor_lock);
    if (stale_timerfd())
        arm_timerfd(0);
    pthread_mutex_unlock(&reactor_lock);
}

static void run_timers(void) {
    atomic_fetch_add_explicit(&timer_passes, 1, memory_order_relaxed);
    uint64_t now = wsp_now_ms();
    /* Collect the due items first: on_timer may re-arm or remove timers. */
    struct wsp_reactor_item *due[BATCH];
    int n;
    do {
        n = 0;
        pthread_mutex_lock(&reactor_lock);
        for (struct wsp_reactor_item *it = timers; it && n < BATCH; it = it->timer_next) {
            uint64_t d = atomic_load(&it->due_ms);
            if (d && d <= now && !atomic_load(&it->removed)) {
                atomic_store(&it->due_ms, 0);
                atomic_fetch_sub(&timers_set, 1); /* the rearm below sees if none is left */
                due[n++] = it;
            }
        }
        pthread_mutex_unlock(&reactor_lock);
        for (int i = 0; i < n; i++)
            due[i]->on_timer(due[i], now);
    } while (n == BATCH);
    pthread_mutex_lock(&reactor_lock);
    rearm_timerfd();
    pthread_mutex_unlock(&reactor_lock);
}

static void reap_zombies(void) {
    pthread_mutex_lock(&reactor_lock);
    struct wsp_reactor_item *z = zombies;
    zombies = NULL;
    pthread_mutex_unlock(&reactor_lock);
    while (z) {
        struct wsp_reactor_item *next = z->next_zombie;
        z->release(z);
        z = next;
    }
}

unsigned wsp_reactor_wakes(void) {
    return atomic_load_explicit(&wakes, memory_order_relaxed);
}

unsigned wsp_reactor_timer_passes(void) {
    return atomic_load_explicit(&timer_passes, memory_order_relaxed);
}

uint64_t wsp_reactor_timer_armed_ms(void) {
    return atomic_load_explicit(&timer_armed_ms, memory_order_relaxed);
}

int wsp_reactor_is_current(void) {
    return on_reactor_thread;
}

void wsp_reactor_after(struct wsp_reactor_task *task) {
    if (task->queued)
        return;
    task->queued = 1;
    task->next = tasks;
    tasks = task;
}

static void run_tasks(void) {
    while (tasks) {
        struct wsp_reactor_task *t = tasks;
        tasks = t->next;
        t->queued = 0;
        t->run(t);
    }
}

/* Runs the jobs waiting now, each once. Those they hand over wait for the next pass (the loop
 * looks at the sockets without sleeping first): a job that keeps handing over work cannot
 * keep the sockets waiting. */
static void run_jobs(void) {
    if (!atomic_load_explicit(&jobs_waiting, memory_order_acquire))
        return;
    pthread_mutex_lock(&jobs_lock);
    struct job *batch = jobs;
    size_t n = jobs_len, cap = jobs_cap;
    jobs = spare; /* the two arrays take turns: no allocation per batch */
    jobs_cap = spare_cap;
    jobs_len = 0;
    atomic_store_explicit(&jobs_waiting, 0, memory_order_relaxed);
    pthread_mutex_unlock(&jobs_lock);
    for (size_t i = 0; i < n; i++) {
        batch[i].fn(batch[i].context);
        run_tasks(); /* the upcalls a provider call in the job deferred (netevents.c) */
    }
    spare = batch;
    spare_cap = cap;
}

/* reactor_lock held. */
static void set_jobs_open(bool open) {
    pthread_mutex_lock(&jobs_lock);
    jobs_open = open;
    pthread_mutex_unlock(&jobs_lock);
}

int WSPRunOnEventThread(LPWSPJOBPROC fn, void *context) {
    if (!fn)
        return WSAEFAULT;
    pthread_mutex_lock(&jobs_lock);
    if (!jobs_open) {
        pthread_mutex_unlock(&jobs_lock);
        return WSANOTINITIALISED;
    }
    if (jobs_len == jobs_cap) {
        size_t cap = jobs_cap ? jobs_cap * 2 : 16;
        struct job *more = realloc(jobs, cap * sizeof *more);
        if (!more) {
            pthread_mutex_unlock(&jobs_lock);
            return WSAENOBUFS;
        }
        jobs = more;
        jobs_cap = cap;
    }
    jobs[jobs_len++] = (struct job){fn, context};
    atomic_store_explicit(&jobs_waiting, jobs_len, memory_order_release);
    /* The reactor's own jobs run after the item it is on, or before it next sleeps; a queue
     * that was not empty has woken it already. The wake-up is written under the lock: while
     * the queue is open the thread cannot exit and close wakefd. */
    if (jobs_len == 1 && !on_reactor_thread)
        wake();
    pthread_mutex_unlock(&jobs_lock);
    return 0;
}

/* The thread's end, once stopped with nothing left to run: closes the descriptors and lets
 * the next start make a thread. 0 when there is more to do first, or a start revived it. */
static int exit_if_stopped(void) {
    pthread_mutex_lock(&reactor_lock);
    if (!atomic_load(&stopping) || atomic_load(&jobs_waiting) || zombies) {
        pthread_mutex_unlock(&reactor_lock);
        return 0;
    }
    running = false;
    close(epfd);
    close(wakefd);
    close(timerfd);
    pthread_mutex_lock(&jobs_lock); /* empty and closed: only the arrays are left */
    free(jobs);
    jobs = NULL;
    jobs_cap = 0;
    pthread_mutex_unlock(&jobs_lock);
    free(spare);
    spare = NULL;
    spare_cap = 0;
    if (stoppers) {
        exited_thread = pthread_self();
        to_join = true;
    } else {
        pthread_detach(pthread_self()); /* stopped from a job or an upcall: no one joins it */
    }
    pthread_cond_broadcast(&exit_cond);
    pthread_mutex_unlock(&reactor_lock);
    return 1;
}

/* Whether the loop goes on. Once stopped, the thread runs what it took, then exits (0); a
 * start that revived it meanwhile has it go on. */
static int keep_running(void) {
    while (atomic_load(&stopping)) {
        run_tasks();
        run_jobs(); /* taken before the stop: run, not lost (new ones are refused now) */
        reap_zombies();
        if (exit_if_stopped())
            return 0;
    }
    return 1;
}

static void *reactor_main(void *arg) {
    (void)arg;
    on_reactor_thread = 1;
    pthread_setname_np(pthread_self(), "wsp-reactor"); /* for ps, perf and debuggers */
    struct epoll_event events[BATCH];
    while (keep_running()) {
        /* Jobs handed over by jobs wait: a look at the sockets, without sleeping, first. */
        int idle = atomic_load_explicit(&jobs_waiting, memory_order_relaxed) ? 0
                   : stale_timerfd()                                          ? STALE_GRACE_MS
                                                                              : -1;
        int n = epoll_wait(epfd, events, BATCH, idle);
        if (n == 0 && idle == STALE_GRACE_MS)
            disarm_if_stale();
        int timers_due = 0;
        for (int i = 0; i < n; i++) {
            struct wsp_reactor_item *it = events[i].data.ptr;
            if (it == NULL || it == (void *)&timerfd) {
                uint64_t v;
                ssize_t r = read(it ? timerfd : wakefd, &v, sizeof v);
                (void)r;
                timers_due |= it != NULL;
                continue;
            }
            if (!atomic_load(&it->removed))
                it->on_ready(it, events[i].events);
            run_tasks();
            run_jobs();
        }
        if (timers_due)
            run_timers();
        run_tasks();
        run_jobs();
        reap_zombies();
    }
    return NULL;
}

int wsp_reactor_start(void) {
    pthread_mutex_lock(&reactor_lock);
    int err = 0;
    bool join_old = false;
    pthread_t old;
    if (running && users == 0) {
        /* The last stop is under way, the thread not yet out of its loop: it carries on, and
         * the stop's wait ends. (A wait here for it to exit could never end when the caller
         * is its own job.) */
        set_jobs_open(true);
        atomic_store(&stopping, 0);
        pthread_cond_broadcast(&exit_cond);
    } else if (!running) {
        if (to_join) { /* exited, and no stop came to join it yet */
            old = exited_thread;
            to_join = false;
            join_old = true;
        }
        epfd = epoll_create1(EPOLL_CLOEXEC);
        wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        timer_armed_ms = 0;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        struct epoll_event tev = {.events = EPOLLIN, .data.ptr = &timerfd};
        if (epfd < 0 || wakefd < 0 || timerfd < 0 ||
            epoll_ctl(epfd, EPOLL_CTL_ADD, wakefd, &ev) < 0 ||
            epoll_ctl(epfd, EPOLL_CTL_ADD, timerfd, &tev) < 0) {
            err = wsp_wsa_from_errno(errno);
        } else {
            atomic_store(&stopping, 0);
            int rc = pthread_create(&thread, NULL, reactor_main, NULL);
            if (rc) {
                err = wsp_wsa_from_errno(rc);
            } else {
                running = true;
                set_jobs_open(true);
            }
        }
        if (err) {
            if (epfd >= 0)
                close(epfd);
            if (wakefd >= 0)
                close(wakefd);
            if (timerfd >= 0)
                close(timerfd);
        }
    }
    if (!err)
        users++;
    pthread_mutex_unlock(&reactor_lock);
    if (join_old)
        pthread_join(old, NULL);
    return err;
}

void wsp_reactor_stop(void) {
    pthread_mutex_lock(&reactor_lock);
    if (users > 0 && --users == 0 && running) {
        set_jobs_open(false);
        atomic_store(&stopping, 1);
        wake(); /* under the lock: the thread may exit, closing wakefd, as soon as it sees */
    }
    pthread_mutex_unlock(&reactor_lock);
}

void wsp_reactor_wait_stopped(void) {
    if (on_reactor_thread)
        return; /* the loop ends once the job or upcall that stopped it returns */
    pthread_mutex_lock(&reactor_lock);
    stoppers++;
    while (running && atomic_load(&stopping))
        pthread_cond_wait(&exit_cond, &reactor_lock);
    stoppers--;
    bool join = to_join;
    pthread_t t = exited_thread;
    to_join = false;
    pthread_mutex_unlock(&reactor_lock);
    if (join)
        pthread_join(t, NULL);
}

int wsp_reactor_add(struct wsp_reactor_item *item, uint32_t events) {
    atomic_store(&item->removed, 0);
    struct epoll_event ev = {.events = events, .data.ptr = item};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, item->fd, &ev) < 0)
        return wsp_wsa_from_errno(errno);
    return 0;
}

int wsp_reactor_add_over(struct wsp_reactor_item *item, uint32_t events) {
    atomic_store(&item->removed, 0);
    struct epoll_event ev = {.events = events, .data.ptr = item};
    /* The registration is there: it goes only with the descriptor's file, which the socket
     * holds. A failure (want of kernel memory) is the caller's, as wsp_reactor_add's. */
    return epoll_ctl(epfd, EPOLL_CTL_MOD, item->fd, &ev) < 0 ? wsp_wsa_from_errno(errno) : 0;
}

/* A registered descriptor's MOD fails only for want of kernel memory; no caller could do
 * better than go on with the old mask, so nothing is reported. */
void wsp_reactor_modify(struct wsp_reactor_item *item, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = item};
    epoll_ctl(epfd, EPOLL_CTL_MOD, item->fd, &ev);
}

/* reactor_lock held. A timer set (1) or cleared (-1) anywhere but in run_timers. */
static void count_timer(int change) {
    if (atomic_fetch_add(&timers_set, change) + change == 0 && !on_reactor_thread &&
        timer_armed_ms > wsp_now_ms() + STALE_NEAR_MS)
        arm_timerfd(0);
}

void wsp_reactor_set_timer(struct wsp_reactor_item *item, uint64_t due_ms) {
    pthread_mutex_lock(&reactor_lock);
    if (atomic_load(&item->removed)) { /* the reaper may free it: never link it again */
        pthread_mutex_unlock(&reactor_lock);
        return;
    }
    if (due_ms && !item->has_timer) {
        item->has_timer = 1;
        item->timer_prev = NULL;
        item->timer_next = timers;
        if (timers)
            timers->timer_prev = item;
        timers = item;
    }
    uint64_t was = atomic_exchange(&item->due_ms, due_ms);
    if (due_ms && (timer_armed_ms == 0 || due_ms < timer_armed_ms))
        arm_timerfd(due_ms);
    if (!was != !due_ms)
        count_timer(due_ms ? 1 : -1);
    pthread_mutex_unlock(&reactor_lock);
}

/* reactor_lock held. */
static void unlink_timer(struct wsp_reactor_item *item) {
    if (!item->has_timer)
        return;
    if (item->timer_prev)
        item->timer_prev->timer_next = item->timer_next;
    else
        timers = item->timer_next;
    if (item->timer_next)
        item->timer_next->timer_prev = item->timer_prev;
    item->has_timer = 0;
    if (atomic_exchange(&item->due_ms, 0))
        count_timer(-1);
}

/* Stops watching (unless disarmed: the registration can report nothing more already); when
 * close_fd is set, closes the descriptor after epoll has forgotten it and before anyone else
 * could free the item (which the release may do at once). */
static void remove_item(struct wsp_reactor_item *item, int close_fd, int disarmed) {
    if (!disarmed)
        epoll_ctl(epfd, EPOLL_CTL_DEL, item->fd, NULL);
    if (close_fd)
        close(item->fd);
    /* Read before the item joins the zombies: from then on the reactor may free it. */
    int wake_reactor = !item->quiet_release && !pthread_equal(pthread_self(), thread);
    pthread_mutex_lock(&reactor_lock);
    atomic_store(&item->removed, 1);
    unlink_timer(item);
    item->next_zombie = zombies;
    zombies = item;
    pthread_mutex_unlock(&reactor_lock);
    if (wake_reactor)
        wake();
}

void wsp_reactor_remove(struct wsp_reactor_item *item) { remove_item(item, 0, 0); }

void wsp_reactor_remove_disarmed(struct wsp_reactor_item *item) { remove_item(item, 0, 1); }

void wsp_reactor_pause(struct wsp_reactor_item *item) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, item->fd, NULL);
}

void wsp_reactor_remove_and_close(struct wsp_reactor_item *item) { remove_item(item, 1, 0); }
