/* sem_type.c - see sem_type.h.
 *
 * A semaphore ping-pong is two acquires and two releases per round trip,
 * each at most one system call (none while nobody waits: sem.c): the
 * Python frame of pyclone.Semaphore.acquire()/release() was a fixed part
 * of every hand-off.  This base type answers the common calls itself --
 * acquire() with the defaults (wait forever), release() of one permit --
 * and hands everything else to the Python class's _acquire_slow()/
 * _release_slow(), which hold the rules and the messages: other arguments,
 * a closed or unbound semaphore, and any failure.  A failed fast call has
 * taken or given no permit, so the slow path simply does the same call
 * again (through _wait()/_post()) and reports what goes wrong.
 *
 * The type holds the semaphore's fds and its shared page, the page as a
 * buffer export for as long as it lives: the mmap cannot be closed under a
 * task that waits on it without the GIL.
 */
#include "sem_type.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "sem.h"

#if PY_VERSION_HEX < 0x030C0000
#  include <structmember.h>
#  define Py_T_BOOL T_BOOL
#endif

typedef struct {
    PyObject_HEAD
    int bound;              /* _bind() done: the fields below are valid */
    int robust;             /* a System V semaphore, else an eventfd */
    int id;                 /* the System V set's id */
    struct sem_eventfd ev;  /* the eventfd's fds and shared page */
    Py_buffer page;         /* the shared page, held while we live (.obj: NULL if none):
                             * it cannot be unmapped under a task asleep on it */
    char closed;            /* Python's _closed */
    int acquiring;          /* acquires under way in tasks of this memory (GIL held) */
} SemCore;

/* The slow methods' names, interned once by the main interpreter's import
 * (objects are not shared with subinterpreters, which may have a GIL of
 * their own: they look the names up as C strings). */
static PyObject *acquire_slow_name, *release_slow_name;

static PyObject *
call_slow(PyObject *self, PyObject *name, const char *cname, PyObject *const *args,
          Py_ssize_t nargs, PyObject *kwnames)
{
    /* self.<name>(*args, **kwargs), the arguments passed on as given. */
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    PyObject *stack[8];
    if (1 + nargs + nkw > (Py_ssize_t)(sizeof stack / sizeof stack[0])) {
        PyErr_Format(PyExc_TypeError, "too many arguments (%zd)", nargs + nkw);
        return NULL;
    }
    PyObject *method = name != NULL && PyInterpreterState_Get() == PyInterpreterState_Main()
                       ? PyObject_GetAttr(self, name) : PyObject_GetAttrString(self, cname);
    if (method == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs + nkw; i++) {
        stack[i] = args[i];
    }
    PyObject *r = PyObject_Vectorcall(method, stack, (size_t)nargs, kwnames);
    Py_DECREF(method);
    return r;
}

static int
take(SemCore *self, double timeout)
{
    /* Counted while it runs, under the GIL: only a wait releases the GIL,
     * so other tasks of this memory see the count only while we may sleep. */
    self->acquiring++;
    int r = self->robust ? sem_sysv_acquire(self->id, timeout)
                         : sem_eventfd_acquire(&self->ev, timeout);
    self->acquiring--;
    return r;
}

static int
give(SemCore *self, unsigned long long n)
{
    /* A waiter that shares this object shares our GIL: wake it without
     * holding the GIL (sem.c).  A fork child's copy of the count, or a
     * waiter killed asleep, only costs a needless release of the GIL. */
    int drop_gil = self->acquiring > 0;
    return self->robust ? sem_sysv_release(self->id, (int)n, drop_gil)
                        : sem_eventfd_release(&self->ev, (uint64_t)n, drop_gil);
}

static PyObject *
semcore_acquire(SemCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    int plain = self->bound && !self->closed && kwnames == NULL
                && (nargs == 0 || (nargs == 1 && args[0] == Py_True));
    if (plain) {
        int r = take(self, -1.0);
        if (r == 1) {
            Py_RETURN_TRUE;
        }
        if (r == -2) {
            return NULL;            /* a signal handler raised */
        }
        /* An error (no permit taken): the slow path says what it is. */
    }
    return call_slow((PyObject *)self, acquire_slow_name, "_acquire_slow", args, nargs, kwnames);
}

static PyObject *
semcore_release(SemCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    int one = nargs == 0;
    if (nargs == 1 && PyLong_CheckExact(args[0])) {
        int overflow;
        one = PyLong_AsLongAndOverflow(args[0], &overflow) == 1;
    }
    if (one && self->bound && !self->closed && kwnames == NULL) {
        if (give(self, 1) == 0) {
            Py_RETURN_NONE;
        }
        /* Nothing was given: the slow path tries again and says why not. */
    }
    return call_slow((PyObject *)self, release_slow_name, "_release_slow", args, nargs, kwnames);
}

static int
check_bound(SemCore *self)
{
    if (!self->bound) {
        PyErr_SetString(PyExc_ValueError, "the semaphore was never bound (_bind)");
        return -1;
    }
    return 0;
}

static PyObject *
semcore_wait(SemCore *self, PyObject *arg)
{
    double timeout = PyFloat_AsDouble(arg);
    if ((timeout == -1.0 && PyErr_Occurred()) || check_bound(self) < 0) {
        return NULL;
    }
    int r = take(self, timeout);
    if (r == -2) {
        return NULL;
    }
    if (r < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyBool_FromLong(r);
}

static PyObject *
semcore_post(SemCore *self, PyObject *arg)
{
    unsigned long long n = PyLong_AsUnsignedLongLong(arg);
    if ((n == (unsigned long long)-1 && PyErr_Occurred()) || check_bound(self) < 0) {
        return NULL;
    }
    if (self->robust && n > INT_MAX) {
        errno = ERANGE;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (give(self, n) < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

static PyObject *
semcore_share(SemCore *self, PyObject *unblock)
{
    if (check_bound(self) < 0) {
        return NULL;
    }
    if (self->robust) {
        Py_RETURN_NONE;
    }
    int r = PyObject_IsTrue(unblock) ? sem_eventfd_unblock(&self->ev)
                                     : sem_eventfd_share(&self->ev);
    if (r < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

static PyObject *
semcore_user_value(SemCore *self, PyObject *unused)
{
    if (check_bound(self) < 0) {
        return NULL;
    }
    if (self->robust) {
        return PyLong_FromLong(-1);
    }
    return PyLong_FromLongLong((long long)sem_eventfd_user_value(&self->ev));
}

static PyObject *
semcore_bind(SemCore *self, PyObject *args)
{
    int robust, handle, hint, waiter;
    PyObject *page;
    if (!PyArg_ParseTuple(args, "piiiO:_bind", &robust, &handle, &hint, &waiter, &page)) {
        return NULL;
    }
    if (self->bound) {
        PyErr_SetString(PyExc_ValueError, "_bind: already bound");
        return NULL;
    }
    if (page != Py_None) {
        if (PyObject_GetBuffer(page, &self->page, PyBUF_WRITABLE) < 0) {
            return NULL;
        }
        if (self->page.len < (Py_ssize_t)sizeof(struct sem_shared)
            || (uintptr_t)self->page.buf % sizeof(uint64_t) != 0 || hint < 0 || waiter < 0) {
            PyBuffer_Release(&self->page);
            PyErr_SetString(PyExc_ValueError,
                            "_bind: the shared page must be 16 aligned bytes, with the hint "
                            "and epoll fds");
            return NULL;
        }
    }
    self->robust = robust;
    self->id = handle;
    self->ev.fd = handle;
    self->ev.hint = hint;
    self->ev.waiter = waiter;
    self->ev.shared = page != Py_None ? (struct sem_shared *)self->page.buf : NULL;
    self->bound = 1;
    Py_RETURN_NONE;
}

static int
semcore_traverse(SemCore *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));    /* a heap type's instances hold it */
    Py_VISIT(self->page.obj);
    return 0;
}

static int
semcore_clear(SemCore *self)
{
    /* Only once nobody can call us: a wait holds a reference to self. */
    if (self->page.obj != NULL) {
        self->bound = 0;
        self->ev.shared = NULL;
        PyBuffer_Release(&self->page);
    }
    return 0;
}

static void
semcore_dealloc(SemCore *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    (void)semcore_clear(self);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static PyMethodDef semcore_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))semcore_acquire, METH_FASTCALL | METH_KEYWORDS,
     "acquire($self, /, blocking=True, timeout=None)\n--\n\n"
     "Take one permit; False if it could not be had in time."},
    {"release", (PyCFunction)(void (*)(void))semcore_release, METH_FASTCALL | METH_KEYWORDS,
     "release($self, /, n=1)\n--\n\n"
     "Give back ``n`` permits (to whichever tasks wait)."},
    {"_wait", (PyCFunction)semcore_wait, METH_O,
     "_wait($self, timeout, /)\n--\n\n"
     "Take one permit, waiting up to timeout seconds (-1: forever, 0: only try)."},
    {"_post", (PyCFunction)semcore_post, METH_O,
     "_post($self, n, /)\n--\n\n"
     "Give n permits (OSError as the system call says)."},
    {"_share", (PyCFunction)semcore_share, METH_O,
     "_share($self, unblock, /)\n--\n\n"
     "Move the count into the eventfd for good; make the eventfd non-blocking\n"
     "too if unblock."},
    {"_user_value", (PyCFunction)semcore_user_value, METH_NOARGS,
     "_user_value($self, /)\n--\n\n"
     "The count kept in the shared page, or -1 where the kernel keeps it."},
    {"_bind", (PyCFunction)semcore_bind, METH_VARARGS,
     "_bind($self, robust, handle, hint, waiter, page, /)\n--\n\n"
     "What the methods use, once: the kind, the eventfd or set id, the hint\n"
     "eventfd and the epoll fd (or -1), and the shared page (or None)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef semcore_members[] = {
    {"_closed", Py_T_BOOL, offsetof(SemCore, closed), 0,
     "Set by close(): every call goes the slow way, which refuses it."},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot semcore_slots[] = {
    {Py_tp_doc, "The C half of pyclone.Semaphore: its common acquire() and release()."},
    {Py_tp_methods, semcore_methods},
    {Py_tp_members, semcore_members},
    {Py_tp_traverse, semcore_traverse},
    {Py_tp_clear, semcore_clear},
    {Py_tp_dealloc, semcore_dealloc},
    {0, NULL},
};

static PyType_Spec semcore_spec = {
    .name = "pyclone._clone.SemaphoreCore",
    .basicsize = sizeof(SemCore),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = semcore_slots,
};

int
sem_type_add(PyObject *module)
{
    if (acquire_slow_name == NULL && PyInterpreterState_Get() == PyInterpreterState_Main()) {
        acquire_slow_name = PyUnicode_InternFromString("_acquire_slow");
        release_slow_name = PyUnicode_InternFromString("_release_slow");
        if (acquire_slow_name == NULL || release_slow_name == NULL) {
            Py_CLEAR(acquire_slow_name);
            Py_CLEAR(release_slow_name);
            return -1;
        }
    }
    PyObject *type = PyType_FromModuleAndSpec(module, &semcore_spec, NULL);
    if (type == NULL) {
        return -1;
    }
    int r = PyModule_AddObject(module, "SemaphoreCore", type);
    if (r < 0) {
        Py_DECREF(type);
    }
    return r;
}
