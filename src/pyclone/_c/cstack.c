/* cstack.c - see cstack.h.  The minimum comes from the interpreter's own
 * internal header (it differs between release and debug builds). */
#define Py_BUILD_CORE 1
#include "cstack.h"

#include <dlfcn.h>

#if PYCLONE_C_STACK_BOUNDS && PYCLONE_KNOWN_INTERNALS
#  include "internal/pycore_pythonrun.h"    /* _PyOS_MIN_STACK_SIZE */
#  define MIN_STACK ((size_t)_PyOS_MIN_STACK_SIZE)
#elif PYCLONE_C_STACK_BOUNDS
#  define MIN_STACK ((size_t)96 * 1024)     /* the larger of 3.14/3.15's two */
#endif

#if PYCLONE_C_STACK_BOUNDS
/* PyUnstable_ThreadState_SetStackProtection() appeared in 3.14.2: looked up
 * at run time, so that one build serves every 3.14. */
typedef int (*set_protection_fn)(PyThreadState *, void *, size_t);
static set_protection_fn set_protection;
#endif

void
cstack_init(void)
{
#if PYCLONE_C_STACK_BOUNDS
    *(void **)&set_protection = dlsym(RTLD_DEFAULT, "PyUnstable_ThreadState_SetStackProtection");
#endif
}

size_t
cstack_min_size(void)
{
#if PYCLONE_C_STACK_BOUNDS
    return set_protection != NULL ? MIN_STACK : 0;
#else
    return 0;
#endif
}

void
cstack_set(PyThreadState *tstate, void *low, void *high)
{
#if PYCLONE_C_STACK_BOUNDS
    /* Below the minimum CPython would raise, which needs an attached thread
     * state; the Python layer never gives a child a stack that small. */
    if (set_protection != NULL && high > low
        && (size_t)((char *)high - (char *)low) >= MIN_STACK) {
        (void)set_protection(tstate, low, (size_t)((char *)high - (char *)low));
    }
#else
    (void)tstate;
    (void)low;
    (void)high;
#endif
}
