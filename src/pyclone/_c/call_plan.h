/* call_plan.h - what a clone child calls: fn(*args, **kwargs). */
#ifndef PYCLONE_CALL_PLAN_H
#define PYCLONE_CALL_PLAN_H

#include "compat.h"

/* What a child calls: fn(*args, **kwargs), kwargs NULL for none.  Borrowed
 * references in fork and borrowed mode (the caller's frame holds them and
 * outlives the call); owned in thread mode (call_plan_hold). */
struct call_plan {
    PyObject *fn;
    PyObject *args;         /* a tuple */
    PyObject *kwargs;       /* a dict, or NULL */
};

static inline void
call_plan_hold(struct call_plan *c)
{
    Py_INCREF(c->fn);
    Py_INCREF(c->args);
    Py_XINCREF(c->kwargs);
}

static inline void
call_plan_clear(struct call_plan *c)
{
    Py_CLEAR(c->fn);
    Py_CLEAR(c->args);
    Py_CLEAR(c->kwargs);
}

#endif
