/* compat.h - the CPython and libc differences pyclone has to bridge.
 *
 * Everything version-specific lives here so the rest of the C core reads
 * as one program: other files ask "does this interpreter have X" through the
 * PYCLONE_HAVE_* / PYCLONE_* feature macros below, not "is this 3.12".
 * Supported: CPython 3.9 to 3.15 with the GIL, glibc >= 2.25 (older glibc
 * caches the pid in the thread descriptor, so a raw clone child would see
 * its parent's pid from getpid()).
 *
 * What pyclone needs of CPython's private structures (frame layout, stack
 * references, thread-state fields) comes from the interpreter's own
 * internal headers, included only by the few files that define
 * Py_BUILD_CORE (frames.c, cstack.c, watchdog.c, pending.c); no layout is
 * copied by hand.
 */
#ifndef PYCLONE_COMPAT_H
#define PYCLONE_COMPAT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* A macro's value as a string literal (SIGCHLD in clone()'s signature). */
#define PYCLONE_STR_(x) #x
#define PYCLONE_STR(x) PYCLONE_STR_(x)

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

/* The newest CPython whose private structures pyclone was tested against.
 * On a newer one everything builds and imports, but nothing reads those
 * structures: abandoned frames are left as a bounded leak (frames.c) and the
 * Python layer warns once.  PYCLONE_PRETEND_UNTESTED (setup.py honours the
 * environment variable of that name) builds as if this one were newer, to
 * test that path. */
#define PYCLONE_NEWEST_TESTED_HEX 0x030F0000     /* 3.15 */
#if PY_VERSION_HEX >= 0x03100000 || defined(PYCLONE_PRETEND_UNTESTED)
#  define PYCLONE_KNOWN_INTERNALS 0
#else
#  define PYCLONE_KNOWN_INTERNALS 1
#endif

/* Frames: heap objects up to 3.10; from 3.11 _PyInterpreterFrame structs in
 * the thread state's data stack; from 3.14 their object slots are tagged
 * _PyStackRef words and the frame records its evaluation-stack pointer at
 * every escaping call; from 3.15 every thread state has a sentinel base
 * frame, so its current frame is never NULL. */
#define PYCLONE_HEAP_FRAMES (PY_VERSION_HEX < 0x030B0000)
#define PYCLONE_STACKREF_FRAMES (PY_VERSION_HEX >= 0x030E0000)
#define PYCLONE_BASE_FRAME (PY_VERSION_HEX >= 0x030F0000)

/* 3.14+ checks C recursion against stack bounds kept in the thread state,
 * computed once from the pthread it first runs on, unless set with
 * PyUnstable_ThreadState_SetStackProtection (3.14.2+): cstack.c. */
#define PYCLONE_C_STACK_BOUNDS (PY_VERSION_HEX >= 0x030E0000)

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

/* The exception being raised, normalised and with its traceback attached
 * (a new reference), clearing the error indicator. */
static inline PyObject *
compat_take_exception(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value != NULL && tb != NULL) {
        (void)PyException_SetTraceback(value, tb);
    }
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

#endif /* PYCLONE_COMPAT_H */
