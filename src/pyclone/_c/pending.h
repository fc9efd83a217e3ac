/* pending.h - taking back an asynchronous exception that a CLONE_VM child
 * never saw (terminate.c), interpreter-wide flag included. */
#ifndef PYCLONE_PENDING_H
#define PYCLONE_PENDING_H

#include "compat.h"

/* Up to CPython 3.12 a pending asynchronous exception also sets a flag of
 * the whole interpreter, cleared only when a thread takes its exception.
 * This clears `t`'s exception and, when no other thread state of its
 * interpreter has one, that flag (the next thread to take the GIL then
 * recomputes the eval loop's "something to do" word).  GIL held; `t`'s
 * task must be stopped or gone.  From 3.13 the flag belongs to the thread
 * state: only the exception is cleared. */
void pending_async_exc_withdraw(PyThreadState *t);

#endif
