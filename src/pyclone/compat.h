/* compat.h - the CPython and libc differences pyclone has to bridge.
 *
 * Everything version-specific lives here so the rest of the C core reads
 * as one program.  Supported: CPython 3.9 to 3.13 with the GIL, glibc >= 2.25
 * (older glibc caches the pid in the thread descriptor, so a raw clone child
 * would see its parent's pid from getpid()).
 */
#ifndef PYCLONE_COMPAT_H
#define PYCLONE_COMPAT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Child-side functions stay out of line, so a backtrace shows the child. */
#define PYCLONE_NOINLINE __attribute__((noinline))
#define PYCLONE_NORETURN __attribute__((noreturn))

#if PY_VERSION_HEX < 0x03090000
#  error "pyclone needs CPython 3.9 or newer"
#endif

#ifdef Py_GIL_DISABLED
   /* Free-threaded builds key biased reference counting and mimalloc pages
    * on the thread pointer; CLONE_VM children have not been made safe there. */
#  define PYCLONE_HAVE_VM_MODES 0
#else
#  define PYCLONE_HAVE_VM_MODES 1
#endif

/* The current thread state without the "must hold the GIL" assertion. */
#if PY_VERSION_HEX >= 0x030D0000
#  define compat_current_tstate() PyThreadState_GetUnchecked()
#else
#  define compat_current_tstate() _PyThreadState_UncheckedGet()
#endif

static inline int
compat_is_finalizing(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing();
#else
    return _Py_IsFinalizing();
#endif
}

/* 3.10 to 3.12 keep tstate->cframe pointing at a struct on the C stack of
 * the last running eval loop.  After a child ended abruptly that stack is
 * gone, so point the field back at the thread state's own root frame. */
static inline void
compat_reset_cframe(PyThreadState *tstate)
{
#if PY_VERSION_HEX >= 0x030A0000 && PY_VERSION_HEX < 0x030D0000
    tstate->cframe = &tstate->root_cframe;
#else
    (void)tstate;
#endif
}

#endif /* PYCLONE_COMPAT_H */
