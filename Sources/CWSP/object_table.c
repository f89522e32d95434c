/* The handle table; object_table.h is the contract.
 *
 * Every access to the slot array happens under the table's lock, so growing it with realloc
 * is safe. The lock is held only to look a slot up, never while an object is used.
 */
#include "object_table.h"

#include <limits.h>
#include <stdlib.h>

/* Handle layout, low bits first: index, generation, tag. 32-bit targets get fewer objects
 * and a generation that wraps sooner, but the same checks. */
#if UINTPTR_MAX > 0xFFFFFFFFu
#define INDEX_BITS 32
#define GEN_BITS 28
#else
#define INDEX_BITS 16
#define GEN_BITS 12
#endif
#define TAG_SHIFT (INDEX_BITS + GEN_BITS)
#define INDEX_MASK (((uintptr_t)1 << INDEX_BITS) - 1)
#define GEN_MASK (((uintptr_t)1 << GEN_BITS) - 1)
#define MAX_SLOTS ((uint32_t)INDEX_MASK)

_Static_assert(TAG_SHIFT + 4 <= sizeof(uintptr_t) * CHAR_BIT, "tag does not fit in a handle");

struct wsp_slot {
    struct wsp_object *obj; /* NULL while free */
    uint32_t gen;           /* wraps to 0 too: a handle is never 0 all the same (tags are not) */
    uint32_t next_free;     /* index + 1; 0 ends the list */
};

void wsp_object_init(struct wsp_object *obj, void (*destroy)(struct wsp_object *obj)) {
    atomic_init(&obj->refs, 1);
    obj->destroy = destroy;
}

void wsp_object_retain(struct wsp_object *obj) {
    atomic_fetch_add_explicit(&obj->refs, 1, memory_order_relaxed);
}

int wsp_object_shared(struct wsp_object *obj) {
    return atomic_load_explicit(&obj->refs, memory_order_relaxed) > 1;
}

void wsp_object_release(struct wsp_object *obj) {
    /* acq_rel: the destroying thread must see every write other holders made. */
    if (atomic_fetch_sub_explicit(&obj->refs, 1, memory_order_acq_rel) == 1)
        obj->destroy(obj);
}

static uintptr_t make_handle(const struct wsp_object_table *table, uint32_t index) {
    return (uintptr_t)table->tag << TAG_SHIFT | (uintptr_t)table->slots[index].gen << INDEX_BITS |
           index;
}

/* The slot h names while it holds an object, else NULL. Caller holds the lock. */
static struct wsp_slot *find(struct wsp_object_table *table, uintptr_t h) {
    uintptr_t index = h & INDEX_MASK;
    if (h >> TAG_SHIFT != table->tag || index >= table->used)
        return NULL;
    struct wsp_slot *slot = &table->slots[index];
    if (slot->obj == NULL || slot->gen != ((h >> INDEX_BITS) & GEN_MASK))
        return NULL;
    return slot;
}

static int grow(struct wsp_object_table *table) {
    if (table->capacity == MAX_SLOTS)
        return -1;
    uint32_t cap = table->capacity ? table->capacity : 16;
    cap = cap > MAX_SLOTS / 2 ? MAX_SLOTS : cap * 2;
    struct wsp_slot *slots = realloc(table->slots, (size_t)cap * sizeof *slots);
    if (slots == NULL)
        return -1;
    table->slots = slots;
    table->capacity = cap;
    return 0;
}

uintptr_t wsp_table_add(struct wsp_object_table *table, struct wsp_object *obj) {
    uintptr_t h = 0;
    pthread_mutex_lock(&table->lock);
    uint32_t index;
    if (table->free_head) {
        index = table->free_head - 1;
        table->free_head = table->slots[index].next_free;
    } else if (table->used < table->capacity || grow(table) == 0) {
        index = table->used++;
        table->slots[index].gen = 1;
    } else {
        goto out;
    }
    table->slots[index].obj = obj;
    table->slots[index].next_free = 0;
    h = make_handle(table, index);
    obj->handle = h;
out:
    pthread_mutex_unlock(&table->lock);
    return h;
}

struct wsp_object *wsp_table_get(struct wsp_object_table *table, uintptr_t h) {
    pthread_mutex_lock(&table->lock);
    struct wsp_slot *slot = find(table, h);
    struct wsp_object *obj = slot ? slot->obj : NULL;
    if (obj)
        atomic_fetch_add_explicit(&obj->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&table->lock);
    return obj;
}

struct wsp_object *wsp_table_remove(struct wsp_object_table *table, uintptr_t h) {
    pthread_mutex_lock(&table->lock);
    struct wsp_slot *slot = find(table, h);
    struct wsp_object *obj = NULL;
    if (slot) {
        obj = slot->obj;
        slot->obj = NULL;
        slot->gen = (uint32_t)((slot->gen + 1) & GEN_MASK);
        slot->next_free = table->free_head;
        table->free_head = (uint32_t)(slot - table->slots) + 1;
    }
    pthread_mutex_unlock(&table->lock);
    return obj;
}

int wsp_table_handles(struct wsp_object_table *table, uintptr_t *out, int max) {
    int n = 0;
    pthread_mutex_lock(&table->lock);
    for (uint32_t i = 0; i < table->used && n < max; i++)
        if (table->slots[i].obj)
            out[n++] = make_handle(table, i);
    pthread_mutex_unlock(&table->lock);
    return n;
}
