/* frames.c - see frames.h.
 *
 * 3.9/3.10: frames are heap objects.  Each non-generator frame on the chain
 * holds one reference taken by the C call that evaluates it (and released
 * when that call returns, which now never happens); releasing it, top down,
 * frees the chain exactly as an unwinding would.  Generator frames are owned
 * by their generator: left alone.
 *
 * 3.11+: frames live in the thread state's data stack.  If one of them has a
 * frame object (a traceback or sys._getframe() made it), that object points
 * into the data stack, so the data stack is kept alive, with everything in
 * it (a bounded leak).  Otherwise each thread-owned frame's locals, function
 * and code object are released, and the data stack is freed with the thread
 * state.  Values on the evaluation stack are not: their extent is not
 * recorded while a frame calls into C, so they leak (the arguments of the
 * call that never returned - os.execv's argv, say).
 *
 * The layouts below mirror _PyInterpreterFrame (Include/internal/
 * pycore_frame.h) up to localsplus; tests/test_frames_layout.py compiles
 * against CPython's own header to check them.
 */
#include "frames.h"

#if PY_VERSION_HEX < 0x030B0000
#  include <frameobject.h>      /* struct _frame is public up to 3.10 */
#endif

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#if PY_VERSION_HEX >= 0x030B0000
struct iframe {
#  if PY_VERSION_HEX < 0x030C0000                 /* 3.11 */
    PyObject *f_func;
    PyObject *f_globals;
    PyObject *f_builtins;
    PyObject *f_locals;
    PyObject *f_code;
    PyObject *frame_obj;
    struct iframe *previous;
    void *prev_instr;
    int stacktop;
    bool is_entry;
    char owner;
#  else                                           /* 3.12, 3.13 */
    PyObject *f_code;               /* f_executable in 3.13 */
    struct iframe *previous;
    PyObject *f_func;               /* f_funcobj */
    PyObject *f_globals;
    PyObject *f_builtins;
    PyObject *f_locals;
    PyObject *frame_obj;
    void *instr;
    int stacktop;
    uint16_t return_offset;
    char owner;
#  endif
    PyObject *localsplus[1];
};
#  define FRAME_OWNED_BY_THREAD 0
#endif

void *
frames_top(PyThreadState *child)
{
#if PY_VERSION_HEX >= 0x030D0000
    return child->current_frame;
#elif PY_VERSION_HEX >= 0x030B0000
    return child->cframe ? (void *)child->cframe->current_frame : NULL;
#else
    return child->frame;
#endif
}

#if PY_VERSION_HEX >= 0x030B0000
/* Frames in the data stack with a frame object pointing at them.  Other
 * owners are skipped: a generator's frame lives in the generator, and the
 * fields of 3.12+'s entry frames on the C stack are not even initialised. */
static int
any_frame_object(struct iframe *top)
{
    for (struct iframe *f = top; f != NULL; f = f->previous) {
        if (f->owner == FRAME_OWNED_BY_THREAD && f->frame_obj != NULL) {
            return 1;
        }
    }
    return 0;
}

static void
release_frame(struct iframe *f)
{
    if (PyCode_Check(f->f_code)) {
        int n = ((PyCodeObject *)f->f_code)->co_nlocalsplus;
        for (int i = 0; i < n; i++) {
            Py_CLEAR(f->localsplus[i]);
        }
    }
    Py_CLEAR(f->f_locals);
    Py_CLEAR(f->f_func);
    Py_CLEAR(f->f_code);
}
#endif

void
frames_release_abandoned(PyThreadState *child, void *top)
{
    if (top == NULL) {
        return;
    }
#if PY_VERSION_HEX >= 0x030B0000
    struct iframe *f = top;
    if (any_frame_object(f)) {
        /* PyThreadState_Delete frees the chunks it finds: hide them. */
        child->datastack_chunk = NULL;
        child->datastack_top = NULL;
        child->datastack_limit = NULL;
        return;
    }
    while (f != NULL) {
        struct iframe *next = f->previous;
        if (f->owner == FRAME_OWNED_BY_THREAD) {
            release_frame(f);
        }
        f = next;
    }
#else
    PyFrameObject *f = top;
    child->frame = NULL;
    while (f != NULL) {
        PyFrameObject *next = f->f_back;
        if (f->f_gen == NULL) {
            Py_DECREF(f);       /* the evaluating call's reference */
        }
        f = next;
    }
#endif
}

PyObject *
frames_layout(void)
{
#if PY_VERSION_HEX >= 0x030B0000
    return Py_BuildValue("{snsnsnsnsnsnsnsn}",
        "previous", (Py_ssize_t)offsetof(struct iframe, previous),
        "f_locals", (Py_ssize_t)offsetof(struct iframe, f_locals),
        "f_func", (Py_ssize_t)offsetof(struct iframe, f_func),
        "f_code", (Py_ssize_t)offsetof(struct iframe, f_code),
        "frame_obj", (Py_ssize_t)offsetof(struct iframe, frame_obj),
        "stacktop", (Py_ssize_t)offsetof(struct iframe, stacktop),
        "owner", (Py_ssize_t)offsetof(struct iframe, owner),
        "localsplus", (Py_ssize_t)offsetof(struct iframe, localsplus));
#else
    Py_RETURN_NONE;
#endif
}
