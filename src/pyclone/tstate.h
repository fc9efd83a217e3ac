/* tstate.h - thread states for CLONE_VM children, and the GIL takeover
 * when a child is gone (DESIGN.md, "The three execution modes"). */
#ifndef PYCLONE_TSTATE_H
#define PYCLONE_TSTATE_H

#include "compat.h"

/* Called once at import, in a thread that has a thread state. */
void tstate_init(void);

/* Makes `tstate` the one PyGILState_Ensure() finds on this TLS.  3.12+
 * rebind on every attach; before 3.12 the binding is a pthread key that
 * would still name the parent's thread state inside a borrowed child, and
 * PyGILState_Ensure() there would wait for the GIL the child itself holds. */
void tstate_bind_gilstate(PyThreadState *tstate);

/* Borrowed mode, in the parent thread right after the child is gone,
 * without the GIL: take the GIL back for `parent` (taking it over from the
 * child if the child left holding it), then clear and delete `child`. */
void tstate_settle_borrowed(PyThreadState *parent, PyThreadState *child,
                            void *child_top_frame);

/* Releases what the child's abandoned frames hold (frames.h), then clears
 * and deletes its thread state; the caller holds the GIL with another
 * thread state current.  `child_top_frame` comes from frames_top(). */
void tstate_discard_child(PyThreadState *child, void *child_top_frame);

#endif
