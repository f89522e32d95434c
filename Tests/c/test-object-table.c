/* The handle tables (object_table.c): every operation takes the table's lock. A missing lock
 * seldom shows as a wrong answer in a test's lifetime, so these tests hold the lock
 * themselves and check that each operation, run meanwhile in another thread, sleeps on it
 * (seen in /proc as a futex wait) rather than finishing. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "faults.h"
#include "object_table.h"
#include "support.h"

enum op_kind { OP_ADD, OP_GET, OP_REMOVE, OP_HANDLES };

struct op {
    struct wsp_object_table *table;
    enum op_kind kind;
    struct wsp_object *obj; /* OP_ADD's object; what OP_GET and OP_REMOVE found */
    uintptr_t handle;       /* OP_GET's and OP_REMOVE's; what OP_ADD made */
    int count;              /* what OP_HANDLES found */
    atomic_int tid, done;
};

static void *op_main(void *arg) {
    struct op *o = arg;
    atomic_store(&o->tid, (int)syscall(SYS_gettid));
    uintptr_t out[4];
    switch (o->kind) {
    case OP_ADD: o->handle = wsp_table_add(o->table, o->obj); break;
    case OP_GET: o->obj = wsp_table_get(o->table, o->handle); break;
    case OP_REMOVE: o->obj = wsp_table_remove(o->table, o->handle); break;
    case OP_HANDLES: o->count = wsp_table_handles(o->table, out, 4); break;
    }
    atomic_store(&o->done, 1);
    return NULL;
}

/* Whether thread tid is asleep in a futex wait: a contended mutex's sleep. */
static int in_futex_wait(int tid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    long nr = -1;
    int got = fscanf(f, "%ld", &nr);
    fclose(f);
    return got == 1 && nr == SYS_futex;
}

/* Runs o in a thread while holding the table's lock: it must wait for the lock. */
static void run_while_locked(struct op *o) {
    pthread_t t;
    pthread_mutex_lock(&o->table->lock);
    CHECK_EQ(pthread_create(&t, NULL, op_main, o), 0);
    WAIT_FOR(atomic_load(&o->done) ||
                 (atomic_load(&o->tid) && in_futex_wait(atomic_load(&o->tid))),
             10000);
    int finished_without_the_lock = atomic_load(&o->done);
    pthread_mutex_unlock(&o->table->lock);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(finished_without_the_lock, 0);
}

static atomic_int destroyed;
static void count_destroy(struct wsp_object *obj) {
    (void)obj;
    atomic_fetch_add(&destroyed, 1);
}

TEST(object_table_operations_wait_for_the_tables_lock) {
    static struct wsp_object_table table = WSP_OBJECT_TABLE_INIT(WSP_TAG_EVENT);
    struct wsp_object obj;
    wsp_object_init(&obj, count_destroy);

    struct op add = {.table = &table, .kind = OP_ADD, .obj = &obj};
    run_while_locked(&add);
    CHECK(add.handle != 0);

    struct op get = {.table = &table, .kind = OP_GET, .handle = add.handle};
    run_while_locked(&get);
    CHECK(get.obj == &obj);
    wsp_object_release(&obj); /* get's reference */

    struct op handles = {.table = &table, .kind = OP_HANDLES};
    run_while_locked(&handles);
    CHECK_EQ(handles.count, 1);

    struct op remove = {.table = &table, .kind = OP_REMOVE, .handle = add.handle};
    run_while_locked(&remove);
    CHECK(remove.obj == &obj);
    CHECK(wsp_table_get(&table, add.handle) == NULL);
    wsp_object_release(&obj); /* the table's reference */
    CHECK_EQ(atomic_load(&destroyed), 1);
    free(table.slots);
}

/* A handle with the table's tag but an index no object ever held is refused, wherever that
 * index lies: just past the slots in use, inside the array's spare room, at its end, or far
 * past it (never read: that memory is not the table's). The spare room holds whatever the
 * allocator left there; here it is filled with a byte pattern that reads as a live object
 * (a non-NULL pointer) of generation 0x0F0F0F0F, and the forged handles inside it carry that
 * generation, so that only the check against the slots in use can refuse them. */
TEST(object_table_handle_past_the_slots_in_use_names_nothing) {
    static struct wsp_object_table table = WSP_OBJECT_TABLE_INIT(WSP_TAG_QUEUE);
    enum { CAPACITY = 16 };
    table.slots = malloc(CAPACITY * 64); /* more than a slot's size: a pointer, two uint32s */
    CHECK(table.slots != NULL);
    memset(table.slots, 0x0F, CAPACITY * 64);
    table.capacity = CAPACITY;
    struct wsp_object obj;
    wsp_object_init(&obj, count_destroy);
    uintptr_t h = wsp_table_add(&table, &obj);
    CHECK(h != 0);
    CHECK(wsp_table_get(&table, h) == &obj);
    wsp_object_release(&obj); /* get's reference */
    /* The index is the handle's low half (a quarter on 32-bit targets), the slot's here 0;
     * the generation is the next 28 bits (12). */
    int wide = UINTPTR_MAX > 0xFFFFFFFFu;
    uintptr_t index_mask = wide ? (uintptr_t)0xFFFFFFFFu : 0xFFFFu;
    uintptr_t gen_mask = (wide ? (uintptr_t)0x0FFFFFFFu : 0xFFFu) * (index_mask + 1);
    CHECK_EQ(h & index_mask, 0);
    uintptr_t tag = h & ~(index_mask | gen_mask);
    uintptr_t pattern_gen = ((uintptr_t)0x0F0F0F0Fu * (index_mask + 1)) & gen_mask;
    uintptr_t live_gen = h & gen_mask;
    struct {
        uintptr_t index, gen;
    } forged[] = {{1, pattern_gen},        {2, pattern_gen},        {CAPACITY - 1, pattern_gen},
                  {1, live_gen},           {CAPACITY, live_gen},    {CAPACITY + 1, live_gen},
                  {index_mask / 2, live_gen}, {index_mask, live_gen}};
    for (size_t i = 0; i < sizeof forged / sizeof forged[0]; i++) {
        uintptr_t f = tag | forged[i].gen | forged[i].index;
        CHECK(wsp_table_get(&table, f) == NULL);
        CHECK(wsp_table_remove(&table, f) == NULL);
    }
    CHECK(wsp_table_remove(&table, h) == &obj);
    wsp_object_release(&obj); /* the table's reference */
    free(table.slots);
}

/* A slot freed is the next one taken: the table does not grow while it has a free slot, and
 * the new handle names the same slot (the index, its low bits) with a newer generation. */
TEST(object_table_reuses_a_freed_slot_first) {
    static struct wsp_object_table table = WSP_OBJECT_TABLE_INIT(WSP_TAG_QUEUE);
    static struct wsp_object objs[3];
    for (int i = 0; i < 3; i++)
        wsp_object_init(&objs[i], count_destroy);
    uintptr_t a = wsp_table_add(&table, &objs[0]);
    uintptr_t b = wsp_table_add(&table, &objs[1]);
    CHECK(a != 0 && b != 0);
    CHECK(wsp_table_remove(&table, a) == &objs[0]);
    wsp_object_release(&objs[0]);
    uint32_t used = table.used;
    uintptr_t c = wsp_table_add(&table, &objs[2]);
    CHECK(c != 0 && c != a);
    CHECK_EQ(table.used, used);
    CHECK_EQ(c & 0xFFFFu, a & 0xFFFFu); /* the same slot index */
    CHECK(wsp_table_get(&table, a) == NULL);
    CHECK(wsp_table_remove(&table, b) == &objs[1]);
    wsp_object_release(&objs[1]);
    CHECK(wsp_table_remove(&table, c) == &objs[2]);
    wsp_object_release(&objs[2]);
    free(table.slots);
}

/* wsp_table_handles writes at most max handles (its callers pass arrays of exactly max) and
 * says how many; the rest come with the next call, once the first ones are removed. */
TEST(object_table_handles_writes_no_more_than_asked) {
    static struct wsp_object_table table = WSP_OBJECT_TABLE_INIT(WSP_TAG_QUEUE);
    static struct wsp_object objs[3];
    uintptr_t h[3];
    for (int i = 0; i < 3; i++) {
        wsp_object_init(&objs[i], count_destroy);
        h[i] = wsp_table_add(&table, &objs[i]);
        CHECK(h[i] != 0);
    }
    uintptr_t out[3] = {0, 0, 7};
    CHECK_EQ(wsp_table_handles(&table, out, 2), 2);
    CHECK_EQ(out[0], h[0]);
    CHECK_EQ(out[1], h[1]);
    CHECK_EQ(out[2], 7); /* past max: untouched */
    for (int i = 0; i < 2; i++) {
        CHECK(wsp_table_remove(&table, h[i]) == &objs[i]);
        wsp_object_release(&objs[i]);
    }
    CHECK_EQ(wsp_table_handles(&table, out, 2), 1);
    CHECK_EQ(out[0], h[2]);
    CHECK(wsp_table_remove(&table, h[2]) == &objs[2]);
    wsp_object_release(&objs[2]);
    free(table.slots);
}

/* The slot array doubles whenever it is full, from 16 (so its first size is 32): a table of
 * n objects makes about log2(n / 32) + 1 reallocations (counted through the fault wrappers),
 * and never holds more than twice the slots it needs beyond the first 32. */
TEST(object_table_grows_by_doubling_from_32_slots) {
    static struct wsp_object_table table = WSP_OBJECT_TABLE_INIT(WSP_TAG_QUEUE);
    enum { N = 65 };
    static struct wsp_object objs[N];
    static uintptr_t h[N];
    FAULT(realloc, .nth = 1000000, .this_thread = 1); /* never fails: counts this thread's */
    for (int i = 0; i < N; i++) {
        wsp_object_init(&objs[i], count_destroy);
        h[i] = wsp_table_add(&table, &objs[i]);
        CHECK(h[i] != 0);
        /* 1 to 32 objects: 32 slots; 33 to 64: 64; 65: 128 */
        int reallocs = i < 32 ? 1 : i < 64 ? 2 : 3;
        CHECK_EQ(fault_calls(FAULT_realloc), reallocs);
    }
    fault_clear();
    for (int i = 0; i < N; i++) {
        CHECK(wsp_table_remove(&table, h[i]) == &objs[i]);
        wsp_object_release(&objs[i]);
    }
    free(table.slots);
}
