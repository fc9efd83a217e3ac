/* cstack.h - the C-stack bounds CPython 3.14+ checks C recursion against.
 *
 * A thread state computes them once, from the pthread it first runs on, and
 * keeps them when reused.  A CLONE_VM child runs on a stack of its own (the
 * free part of a suspended caller's or a host's stack, or a mapping), so
 * pyclone sets them for each child: deep C recursion there then raises
 * RecursionError, as in a thread, instead of overflowing into the guard. */
#ifndef PYCLONE_CSTACK_H
#define PYCLONE_CSTACK_H

#include "compat.h"

/* Called once at import. */
void cstack_init(void);

/* Tells CPython that `tstate` will run on [low, high).  Writes only fields
 * of the (detached) thread state: callable without the GIL.  A no-op before
 * 3.14, on 3.14.0/3.14.1 (which lack the API) and for regions smaller than
 * cstack_min_size(). */
void cstack_set(PyThreadState *tstate, void *low, void *high);

/* The smallest region CPython accepts (its _PyOS_MIN_STACK_SIZE: 48 KiB, 96
 * KiB in debug builds), or 0 where there is nothing to set. */
size_t cstack_min_size(void);

#endif
