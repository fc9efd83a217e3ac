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

/* ---- frames an abruptly ended child leaves behind (3.11+) ------------ */

/* 3.11+ keep interpreter frames in a per-thread-state "data stack" that
 * PyThreadState_Delete() frees.  Frames a child never returned from stay
 * there; if one has a frame object (a traceback or sys._getframe() made
 * it), that object points into the data stack and would dangle once it is
 * freed, and the cyclic GC traverses it.  So when such a frame exists, the
 * data stack is kept (a bounded leak, only for children that ended without
 * returning) instead of being freed.
 *
 * The layouts below mirror _PyInterpreterFrame (Include/internal/
 * pycore_frame.h) up to the fields read here; they are checked for each
 * minor version this module builds against. */
#if PY_VERSION_HEX >= 0x030B0000
struct iframe_head {
#  if PY_VERSION_HEX < 0x030C0000                 /* 3.11 */
    void *f_func, *f_globals, *f_builtins, *f_locals, *f_code;
    PyObject *frame_obj;
    struct iframe_head *previous;
#  else                                           /* 3.12, 3.13 */
    void *f_code_or_executable;
    struct iframe_head *previous;
    void *f_funcobj, *f_globals, *f_builtins, *f_locals;
    PyObject *frame_obj;
#  endif
};
#  define FRAME_OWNED_BY_THREAD 0
#endif

void *
tstate_child_top_frame(PyThreadState *child)
{
#if PY_VERSION_HEX >= 0x030D0000
    return child->current_frame;
#elif PY_VERSION_HEX >= 0x030B0000
    return child->cframe ? (void *)child->cframe->current_frame : NULL;
#else
    (void)child;
    return NULL;
#endif
}

static void
keep_datastack_if_frames_escape(PyThreadState *child, void *top)
{
#if PY_VERSION_HEX >= 0x030B0000
    for (struct iframe_head *f = top; f != NULL; f = f->previous) {
        if (f->frame_obj != NULL) {
            /* Detach the chunks; PyThreadState_Delete() frees what it
             * still finds, so it will free nothing. */
            child->datastack_chunk = NULL;
            child->datastack_top = NULL;
            child->datastack_limit = NULL;
            return;
        }
    }
#else
    (void)child;
    (void)top;
#endif
}

void
tstate_discard_child(PyThreadState *child, void *child_top_frame)
{
    if (child_top_frame != NULL) {
        keep_datastack_if_frames_escape(child, child_top_frame);
    }
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
