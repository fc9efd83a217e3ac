/* tstate.c - thread states lent to CLONE_VM children and taken back.
 *
 * The fact everything here rests on (CPython 3.9-3.15): a thread state is
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
tstate_discard_child(PyThreadState *child, void *abandoned)
{
    frames_release_abandoned(abandoned);
    PyThreadState_Clear(child);
    PyThreadState_Delete(child);
}

/* ---- one idle thread state per cloning thread ---------------------- */

static __thread PyThreadState *spare;
static __thread int spare_guarded;     /* the Python layer's guard exists */

int
tstate_claim_guard(void)
{
    int first = !spare_guarded;
    spare_guarded = 1;
    return first;
}

PyThreadState *
tstate_for_child(PyInterpreterState *interp)
{
    PyThreadState *t = spare;
    if (t != NULL) {
        spare = NULL;
        return t;
    }
    return PyThreadState_New(interp);
}

int
tstate_reusable(PyThreadState *t)
{
    return t->c_tracefunc == NULL && t->c_profilefunc == NULL && t->async_exc == NULL;
}

/* What a child may have left in its thread state that the next child must
 * not see (PyThreadState_Clear's list, less what a clean return resets). */
void
tstate_reset_for_reuse(PyThreadState *t)
{
    Py_CLEAR(t->dict);                  /* threading.local before 3.13 */
#if PY_VERSION_HEX >= 0x030D0000
    Py_CLEAR(t->threading_local_key);
    Py_CLEAR(t->threading_local_sentinel);
#endif
    Py_CLEAR(t->context);
    t->context_ver++;
    Py_CLEAR(t->async_gen_firstiter);
    Py_CLEAR(t->async_gen_finalizer);
    t->coroutine_origin_tracking_depth = 0;
}

void
tstate_release_child(PyThreadState *child, void *abandoned, int clean)
{
    if (clean && spare == NULL && tstate_reusable(child)) {
        tstate_reset_for_reuse(child);     /* may run __del__ methods */
        if (spare == NULL) {
            spare = child;
            return;
        }
    }
    tstate_discard_child(child, abandoned);
}

void
tstate_drop_spare(void)
{
    PyThreadState *t = spare;
    spare = NULL;
    if (t != NULL && !compat_is_finalizing()) {
        PyThreadState_Clear(t);
        PyThreadState_Delete(t);
    }
}

void
tstate_forget_spare(void)
{
    spare = NULL;
}

void
tstate_guard_gone(void)
{
    spare_guarded = 0;
}

void
tstate_settle_borrowed(PyThreadState *parent, PyThreadState *child,
                       struct vm_entry *vm, void *abandoned, int clean)
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
    vm_done(vm);            /* before its thread state goes */
    tstate_release_child(child, abandoned, clean);
}
