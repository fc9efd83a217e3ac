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

/* The topmost interpreter frame the child left behind, read at once when
 * the child is gone (3.10-3.12 reach it through a struct on the child's
 * stack, which the caller is about to reuse).  NULL if none or < 3.11. */
void *tstate_child_top_frame(PyThreadState *child);

/* Borrowed mode, in the parent thread right after the child is gone,
 * without the GIL: take the GIL back for `parent` (taking it over from the
 * child if the child left holding it), then clear and delete `child`. */
void tstate_settle_borrowed(PyThreadState *parent, PyThreadState *child,
                            void *child_top_frame);

/* Clears and deletes a child's thread state; the caller holds the GIL with
 * another thread state current. */
void tstate_discard_child(PyThreadState *child, void *child_top_frame);

#endif
