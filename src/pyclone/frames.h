/* frames.h - what a CLONE_VM child's abandoned Python frames still hold.
 *
 * A child that leaves without returning (os.execv, os._exit, a fatal
 * signal) never unwinds its Python frames: their references stay taken
 * and, on 3.11+, they stay in the thread state's data stack.  The survivor
 * releases them before deleting the child's thread state. */
#ifndef PYCLONE_FRAMES_H
#define PYCLONE_FRAMES_H

#include "compat.h"

/* The child's topmost Python frame, to be read as soon as the child is gone
 * (3.11 and 3.12 reach it through a struct on the child's C stack, which
 * the caller is about to reuse).  NULL when the child returned normally. */
void *frames_top(PyThreadState *child);

/* Releases what the abandoned frames from `top` down hold, where that can
 * be done exactly; otherwise leaves it (a leak, never a dangling pointer).
 * Needs the GIL; objects may be finalised, so Python code may run. */
void frames_release_abandoned(PyThreadState *child, void *top);

/* Field offsets this build assumes for _PyInterpreterFrame (3.11+), for the
 * test that checks them against CPython's internal header. */
PyObject *frames_layout(void);

#endif
