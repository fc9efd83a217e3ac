/* frames.c - see frames.h.
 *
 * 3.9/3.10: frames are heap objects.  Each non-generator frame on the chain
 * holds one reference taken by the C call that evaluates it (and released
 * when that call returns, which now never happens); releasing it, top down,
 * frees the chain exactly as an unwinding would.
 *
 * 3.11+: frames are _PyInterpreterFrame structs, read through CPython's own
 * internal header for the version being built (this file defines
 * Py_BUILD_CORE).  Thread-owned frames live in the thread state's
 * data stack (heap chunks); the entry frame of each C-level call into the
 * eval loop lives on the C stack, which the survivor is about to reuse, so
 * frames_abandon() relinks the chain past them at once.  If some other
 * object can still reach a frame - a frame object (a traceback or
 * sys._getframe() made it) points into the data stack, a generator owns its
 * frame - the data stack is kept alive with everything in it (a bounded
 * leak).  Otherwise each thread-owned frame's locals, function and code
 * object are released, and the data stack is freed with the thread state.
 *
 * Evaluation-stack values: 3.14+ records each frame's stack pointer at every
 * call that can escape the eval loop (and the GC walks frames by it), so the
 * extent is exact for every frame that was calling out when the child left:
 * released.  Up to 3.13 that extent lives in a C local of the running eval
 * loop while a frame calls into C, so those values leak (the arguments of
 * the call that never returned - os.execv's argv, say).
 *
 * Stack references (3.14+): f_executable, f_funcobj and localsplus[] are
 * tagged words; a set low bit means no reference is owned (immortal or
 * deferred).  They are released with CPython's own PyStackRef_CLEAR.
 */
#define Py_BUILD_CORE 1
#include "frames.h"

#include <stddef.h>
#include <stdint.h>

#if PYCLONE_KNOWN_INTERNALS && !PYCLONE_HEAP_FRAMES
#  if PYCLONE_STACKREF_FRAMES
#    include "internal/pycore_interpframe.h"   /* 3.14+: struct, stackrefs */
#    include "internal/pycore_tstate.h"        /* _PyThreadStateImpl */
#  else
#    include "internal/pycore_frame.h"
#  endif
#  define IFRAME_READ 1
typedef _PyInterpreterFrame iframe;
#else
#  define IFRAME_READ 0
#endif

#if PYCLONE_HEAP_FRAMES
#  include <frameobject.h>      /* struct _frame is public up to 3.10 */
#endif

#if IFRAME_READ
/* The names each version gives the fields this file uses. */
#  if PY_VERSION_HEX >= 0x030D0000
#    define F_CODE f_executable
#  else
#    define F_CODE f_code
#  endif
#  if PY_VERSION_HEX >= 0x030C0000
#    define F_FUNC f_funcobj
#  else
#    define F_FUNC f_func
#  endif
#  if PYCLONE_STACKREF_FRAMES
#    define F_STACK stackpointer
typedef _PyStackRef slot;
#    define CODE_OF(f) PyStackRef_AsPyObjectBorrow((f)->f_executable)
#    define SLOT_CLEAR(s) PyStackRef_CLEAR(s)
#  else
#    define F_STACK stacktop
typedef PyObject *slot;
#    define CODE_OF(f) ((PyObject *)(f)->F_CODE)
#    define SLOT_CLEAR(s) Py_CLEAR(s)
#  endif

/* What the code below assumes of the header's definitions. */
_Static_assert(sizeof(slot) == sizeof(PyObject *),
               "a frame slot is one machine word");
_Static_assert(sizeof(((iframe *)0)->localsplus[0]) == sizeof(slot),
               "localsplus holds slots");
_Static_assert(FRAME_OWNED_BY_THREAD == 0 && FRAME_OWNED_BY_GENERATOR == 1,
               "frame owner values");

static iframe *
current_frame(PyThreadState *t)
{
#  if PY_VERSION_HEX >= 0x030D0000
    return t->current_frame;
#  else
    return t->cframe != NULL ? t->cframe->current_frame : NULL;
#  endif
}

/* Back to "no frame": 3.11/3.12 point cframe at the thread state's root
 * (the dead one was on the child's C stack); 3.15 at its sentinel. */
static void
reset_current_frame(PyThreadState *t)
{
#  if PY_VERSION_HEX >= 0x030D0000
#    if PYCLONE_BASE_FRAME
    t->current_frame = &((_PyThreadStateImpl *)t)->base_frame;
#    else
    t->current_frame = NULL;
#    endif
#  else
    t->cframe = &t->root_cframe;
    t->cframe->current_frame = NULL;
#  endif
}

/* Where CPython recorded the top of f's evaluation stack, or NULL where it
 * did not (up to 3.13 while the frame runs; 3.14+ outside escaping calls).
 * Checked against the frame's extent. */
static slot *
recorded_stack_top(iframe *f, PyCodeObject *co)
{
#  if PYCLONE_STACKREF_FRAMES
    slot *sp = f->stackpointer;
    slot *base = f->localsplus + co->co_nlocalsplus;
    slot *end = f->localsplus + (co->co_framesize - FRAME_SPECIALS_SIZE);
    return sp != NULL && sp >= base && sp <= end ? sp : NULL;
#  else
    (void)f;
    (void)co;
    return NULL;
#  endif
}

static void
release_frame(iframe *f)
{
    PyObject *code = CODE_OF(f);
    if (code != NULL && PyCode_Check(code)) {
        PyCodeObject *co = (PyCodeObject *)code;
        slot *top = recorded_stack_top(f, co);
        slot *end = top != NULL ? top : f->localsplus + co->co_nlocalsplus;
        for (slot *s = f->localsplus; s < end; s++) {
            SLOT_CLEAR(*s);
        }
    }
    Py_CLEAR(f->f_locals);
#  if PYCLONE_STACKREF_FRAMES
    PyStackRef_CLEAR(f->f_funcobj);
    PyStackRef_CLEAR(f->f_executable);
#  else
    Py_CLEAR(f->F_FUNC);
    Py_CLEAR(f->F_CODE);
#  endif
}
#endif /* IFRAME_READ */

#if !PYCLONE_HEAP_FRAMES
/* PyThreadState_Delete frees the chunks it finds: hide them, so that what
 * points into them stays valid. */
static void
keep_data_stack(PyThreadState *t)
{
    t->datastack_chunk = NULL;
    t->datastack_top = NULL;
    t->datastack_limit = NULL;
}
#endif

void *
frames_abandon(PyThreadState *child)
{
#if IFRAME_READ
    iframe *first = NULL, **link = &first;
    int foreign = 0;
    for (iframe *f = current_frame(child); f != NULL; f = f->previous) {
        if (f->owner == FRAME_OWNED_BY_THREAD) {
            foreign |= f->frame_obj != NULL;
            *link = f;              /* f's own link was read already */
            link = &f->previous;
        }
        else {
            /* A generator's frame belongs to its generator; the others are
             * entry frames on the C stack (3.12+) or 3.15's sentinel. */
            foreign |= f->owner == FRAME_OWNED_BY_GENERATOR;
        }
    }
    *link = NULL;
    reset_current_frame(child);
    if (foreign) {
        keep_data_stack(child);
        return NULL;
    }
    return first;
#elif PYCLONE_HEAP_FRAMES
    PyFrameObject *top = child->frame;
    child->frame = NULL;
#  if !PYCLONE_KNOWN_INTERNALS
    return NULL;                /* leave the chain: a bounded leak */
#  else
    return top;
#  endif
#else
    /* A CPython pyclone was not tested on: read nothing of its frames, keep
     * the data stack (a bounded leak, the Python layer has warned). */
#  if PY_VERSION_HEX < 0x030D0000
    child->cframe = &child->root_cframe;
#  endif
    keep_data_stack(child);
    return NULL;
#endif
}

void
frames_release_abandoned(void *chain)
{
#if IFRAME_READ
    for (iframe *f = chain; f != NULL;) {
        iframe *next = f->previous;     /* relinked: data stack only */
        release_frame(f);
        f = next;
    }
#elif PYCLONE_HEAP_FRAMES
    for (PyFrameObject *f = chain; f != NULL;) {
        PyFrameObject *next = f->f_back;
        if (f->f_gen == NULL) {
            Py_DECREF(f);       /* the evaluating call's reference */
        }
        f = next;
    }
#else
    (void)chain;
#endif
}

int
frames_known(void)
{
    return PYCLONE_KNOWN_INTERNALS;
}

PyObject *
frames_layout(void)
{
#if IFRAME_READ
    return Py_BuildValue("{snsnsnsnsnsnsnsn}",
        "previous", (Py_ssize_t)offsetof(iframe, previous),
        "f_locals", (Py_ssize_t)offsetof(iframe, f_locals),
        "func", (Py_ssize_t)offsetof(iframe, F_FUNC),
        "code", (Py_ssize_t)offsetof(iframe, F_CODE),
        "frame_obj", (Py_ssize_t)offsetof(iframe, frame_obj),
        "stack", (Py_ssize_t)offsetof(iframe, F_STACK),
        "owner", (Py_ssize_t)offsetof(iframe, owner),
        "localsplus", (Py_ssize_t)offsetof(iframe, localsplus));
#else
    Py_RETURN_NONE;
#endif
}
