/* Handles for objects that callers may close while other threads still use them.
 *
 * A handle is an integer that encodes (table tag, slot generation, slot index); it is never
 * a pointer, so a garbage, stale or closed handle is detected instead of dereferenced. A
 * slot's generation changes every time its object is removed, so a handle from before the
 * removal never reaches the object that reuses the slot. The tag keeps one table's handles
 * from naming another table's objects (an HWND passed as a WSAEVENT is simply invalid).
 * Handle 0 is never valid.
 *
 * Lifetime: an object is reference counted. The table holds one reference from
 * wsp_table_add until wsp_table_remove, which hands that reference to the remover; every
 * wsp_table_get adds one for the caller. The destroy function runs once, on whichever thread
 * drops the last reference, so a close that races with a call in progress frees nothing
 * under the other thread's feet.
 */
#ifndef WSP_OBJECT_TABLE_H
#define WSP_OBJECT_TABLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Embed as the first member of a table-held object. */
struct wsp_object {
    atomic_size_t refs;
    /* The owner's: frees the object once the last reference is gone. */
    void (*destroy)(struct wsp_object *obj);
    uintptr_t handle; /* written by wsp_table_add, under the table's lock */
};

/* Starts the count at 1: the reference wsp_table_add will take over. */
void wsp_object_init(struct wsp_object *obj, void (*destroy)(struct wsp_object *obj));
void wsp_object_retain(struct wsp_object *obj);
void wsp_object_release(struct wsp_object *obj);
/* Whether anyone besides the caller holds a reference now (a hint: it may change at once). */
int wsp_object_shared(struct wsp_object *obj);

/* Tags fit in 4 bits so that handles keep the same layout on 32-bit targets; none is 0, which
 * keeps every handle non-zero whatever its generation and index. */
enum wsp_table_tag {
    WSP_TAG_EVENT = 1,
    WSP_TAG_QUEUE = 2,
    WSP_TAG_SOCKET = 3,
    WSP_TAG_HELD = 4, /* held requests (held.c) */
    WSP_TAG_MAX = 15,
};

struct wsp_slot;

/* Define one per kind of object with WSP_OBJECT_TABLE_INIT: it needs no set-up call and
 * grows as needed. The slot array is never freed; it is at most one pointer and two
 * integers per object that was ever open at the same time. */
struct wsp_object_table {
    pthread_mutex_t lock;
    unsigned tag;
    struct wsp_slot *slots;
    uint32_t used;      /* slots[0..used) have held an object at some time */
    uint32_t capacity;
    uint32_t free_head; /* index + 1 of the most recently freed slot; 0: none */
};

#define WSP_OBJECT_TABLE_INIT(tag_) {PTHREAD_MUTEX_INITIALIZER, (tag_), NULL, 0, 0, 0}

/* Stores obj, taking over its initial reference. Returns its handle, or 0 when memory (or
 * the handle space) ran out; the caller then still owns obj. */
uintptr_t wsp_table_add(struct wsp_object_table *table, struct wsp_object *obj);
/* The object h names with a new reference for the caller, or NULL. */
struct wsp_object *wsp_table_get(struct wsp_object_table *table, uintptr_t h);
/* Makes h invalid and returns the object with the table's reference, or NULL if h named
 * nothing. Exactly one of several racing removers gets the object. */
struct wsp_object *wsp_table_remove(struct wsp_object_table *table, uintptr_t h);
/* Writes the handles of up to max objects in the table to out; returns how many. */
int wsp_table_handles(struct wsp_object_table *table, uintptr_t *out, int max);

#endif
