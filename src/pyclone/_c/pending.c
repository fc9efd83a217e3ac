/* pending.c - see pending.h.  Reads one field of the interpreter state,
 * through CPython's own internal header for the version being built
 * (Py_BUILD_CORE, as in frames.c). */
#define Py_BUILD_CORE 1
#include "pending.h"

#if PY_VERSION_HEX < 0x030D0000 && PYCLONE_KNOWN_INTERNALS
#  include "internal/pycore_interp.h"       /* interp->ceval.pending */
#  define FLAG_IS_THE_INTERPRETERS 1
#else
#  define FLAG_IS_THE_INTERPRETERS 0
#endif

void
pending_async_exc_withdraw(PyThreadState *t)
{
    Py_CLEAR(t->async_exc);
#if FLAG_IS_THE_INTERPRETERS
    PyInterpreterState *interp = t->interp;
    for (PyThreadState *p = PyInterpreterState_ThreadHead(interp); p != NULL;
         p = PyThreadState_Next(p)) {
        if (p->async_exc != NULL) {
            return;                 /* still wanted, for that thread */
        }
    }
    interp->ceval.pending.async_exc = 0;
#endif
}
