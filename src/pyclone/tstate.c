/* tstate.c - thread states lent to CLONE_VM children and taken back.
 *
 * The fact everything here rests on (CPython 3.9-3.13): a thread state is
 * "current" exactly while its thread holds the GIL.  A child can vanish
 * holding it (os.execv, os._exit, a fatal signal), so the survivor looks at
 * the current thread state once the child is gone: if it is the child's,
 * the GIL is the child's and the survivor takes it over; if it is NULL, the
 * child had released it and the survivor acquires it normally.
 */
#define _GNU_SOURCE
#include "tstate.h"
#include "frames.h"

#include <pthread.h>
#include <limits.h>

/* ---- gilstate binding before 3.12 ------------------------------------ */

#if PY_VERSION_HEX < 0x030C0000
/* CPython keeps "this thread's thread state" for PyGILState_* in a Py_tss_t,
 * a pthread key on Linux, inside the private _PyRuntime.  Rather than read
 * private structures, find the key by its value: the one key whose value on
 * this thread is this thread's gilstate thread state. */
static int gilstate_key_found;
static pthread_key_t gilstate_key;

static void
gilstate_find_key(void)
{
    PyThreadState *me = PyGILState_GetThisThreadState();
    int hits = 0;
    pthread_key_t hit = 0;
    if (me == NULL) {
        return;
    }
    for (unsigned k = 0; k < PTHREAD_KEYS_MAX; k++) {
        if (pthread_getspecific((pthread_key_t)k) == (void *)me) {
            hit = (pthread_key_t)k;
            hits++;
        }
    }
    if (hits == 1) {
        gilstate_key = hit;
        gilstate_key_found = 1;
    }
}
#endif

void
tstate_init(void)
{
#if PY_VERSION_HEX < 0x030C0000
    gilstate_find_key();
#endif
}

void
tstate_bind_gilstate(PyThreadState *tstate)
{
#if PY_VERSION_HEX < 0x030C0000
    /* The key's slot exists already on this thread (it holds the parent's
     * thread state), so pthread_setspecific() allocates nothing. */
    if (gilstate_key_found) {
        (void)pthread_setspecific(gilstate_key, tstate);
    }
#else
    (void)tstate;
#endif
}

void
tstate_discard_child(PyThreadState *child, void *child_top_frame)
{
    frames_release_abandoned(child, child_top_frame);
    compat_reset_cframe(child);
    PyThreadState_Clear(child);
    PyThreadState_Delete(child);
}

void
tstate_settle_borrowed(PyThreadState *parent, PyThreadState *child,
                       void *child_top_frame)
{
    /* Only the child's thread state being current means the child died
     * holding the GIL.  NULL, or (before 3.12, where "current" is a process
     * global, not per thread) another thread's state, means the GIL is free
     * or someone else's: wait for it like any thread. */
    if (compat_current_tstate() == child) {
        /* The child left holding the GIL: it is ours now.  (3.13's Swap
         * releases and re-acquires it, which is equally correct.) */
        PyThreadState_Swap(parent);
    }
    else {
        PyEval_RestoreThread(parent);
    }
    tstate_bind_gilstate(parent);
    tstate_discard_child(child, child_top_frame);
}
