/* tstate.h - thread states for CLONE_VM children, and the GIL takeover
 * when a child is gone (docs/design.md, "The rules that keep the parent
 * alive"). */
#ifndef PYCLONE_TSTATE_H
#define PYCLONE_TSTATE_H

#include "compat.h"
#include "terminate.h"

/* Called once at import, in a thread that has a thread state. */
void tstate_init(void);

/* Makes `tstate` the one PyGILState_Ensure() finds on this TLS.  3.12+
 * rebind on every attach; before 3.12 the binding is a pthread key that
 * would still name the parent's thread state inside a borrowed child, and
 * PyGILState_Ensure() there would wait for the GIL the child itself holds. */
void tstate_bind_gilstate(PyThreadState *tstate);

/* Borrowed mode, in the parent thread right after the child is gone,
 * without the GIL: take the GIL back for `parent` (taking it over from the
 * child if the child left holding it), then clear and delete `child`.
 * `abandoned` comes from frames_abandon() (NULL after a clean return). */
void tstate_settle_borrowed(PyThreadState *parent, PyThreadState *child,
                            struct vm_entry *vm, void *abandoned, int clean);

/* A thread state for a new CLONE_VM child: this thread's idle one if it
 * has one (its data stack is already allocated: a fresh thread state's
 * first Python frame costs a 16 KiB mapping on 3.11+), else a new one. */
PyThreadState *tstate_for_child(PyInterpreterState *interp);

/* After the child is gone: keep its thread state as this thread's idle one
 * when the child ended cleanly and left no tracing or profiling behind
 * (reset so that threading.local, contextvars and asyncio hooks start
 * fresh), else release its frames and delete it.  GIL held. */
void tstate_release_child(PyThreadState *child, void *abandoned, int clean);

/* A child's thread state may serve the next child (no tracing/profiling
 * left behind), after tstate_reset_for_reuse() (GIL held). */
int tstate_reusable(PyThreadState *t);
void tstate_reset_for_reuse(PyThreadState *t);

/* Deletes this thread's idle thread state (GIL held); at finalisation it
 * only forgets it, the interpreter deletes it. */
void tstate_drop_spare(void);

/* True once per thread: the caller must then create the Python-level guard
 * whose finaliser calls tstate_drop_spare() when the thread ends. */
int tstate_claim_guard(void);
/* The guard was dropped (its thread ended, or a nested child's reset). */
void tstate_guard_gone(void);

/* Forgets it without touching it: in a fork child, where CPython has
 * deleted every thread state but the forking thread's. */
void tstate_forget_spare(void);

/* Releases what the child's abandoned frames hold (frames.h), then clears
 * and deletes its thread state; the caller holds the GIL with another
 * thread state current.  `abandoned` comes from frames_abandon(). */
void tstate_discard_child(PyThreadState *child, void *abandoned);

#endif
