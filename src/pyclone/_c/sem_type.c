/* sem_type.c - see sem_type.h.
 *
 * A semaphore ping-pong is two acquires and two releases per round trip,
 * each a Python method call around one system call: the Python frame of
 * pyclone.Semaphore.acquire()/release() was a fixed part of every
 * hand-off.  This base type answers the common calls itself -- acquire()
 * with the defaults (wait forever), release() of one permit -- and hands
 * everything else to the Python class's _acquire_slow()/_release_slow(),
 * which hold the rules and the messages: other arguments, a closed or
 * unbound semaphore, and any failure.  A failed fast call has taken or
 * given no permit, so the slow path simply does the same call again and
 * reports what goes wrong.
 */
#include "sem_type.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "sem.h"

#if PY_VERSION_HEX < 0x030C0000
#  include <structmember.h>
#  define Py_T_BOOL T_BOOL
#endif

typedef struct {
    PyObject_HEAD
    int bound;          /* _bind() done: the fields below are valid */
    int robust;         /* a System V semaphore, else an eventfd */
    int handle;         /* the eventfd or the System V set's id */
    int waiter;         /* the eventfd's epoll fd, or -1 */
    PyObject *sleeper;  /* the shared page of sleeper words (an mmap), or NULL */
    char closed;        /* Python's _closed */
} SemCore;

static PyObject *
call_slow(PyObject *self, const char *name, PyObject *const *args, Py_ssize_t nargs,
          PyObject *kwnames)
{
    /* self.<name>(*args, **kwargs), the arguments passed on as given. */
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    PyObject *stack[8];
    if (1 + nargs + nkw > (Py_ssize_t)(sizeof stack / sizeof stack[0])) {
        PyErr_Format(PyExc_TypeError, "too many arguments (%zd)", nargs + nkw);
        return NULL;
    }
    PyObject *method = PyObject_GetAttrString(self, name);
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

static PyObject *
semcore_acquire(SemCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    int plain = self->bound && !self->closed && kwnames == NULL
                && (nargs == 0 || (nargs == 1 && args[0] == Py_True));
    if (plain) {
        int r;
        if (self->robust) {
            r = sem_sysv_acquire(self->handle, -1.0);
        }
        else if (self->sleeper == NULL) {
            r = sem_eventfd_acquire(self->handle, self->waiter, NULL, -1.0);
        }
        else {
            /* Held as a buffer while we wait: it cannot be unmapped under us. */
            Py_buffer word;
            if (PyObject_GetBuffer(self->sleeper, &word, PyBUF_WRITABLE) < 0) {
                return NULL;
            }
            r = word.len >= 2 * (Py_ssize_t)sizeof(uint32_t)
                ? sem_eventfd_acquire(self->handle, self->waiter, (uint32_t *)word.buf, -1.0)
                : -1;
            PyBuffer_Release(&word);
        }
        if (r == 1) {
            Py_RETURN_TRUE;
        }
        if (r == -2) {
            return NULL;            /* a signal handler raised */
        }
        /* An error (no permit taken): the slow path says what it is. */
    }
    return call_slow((PyObject *)self, "_acquire_slow", args, nargs, kwnames);
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
        int r = self->robust ? sem_sysv_release(self->handle, 1)
                             : sem_eventfd_release(self->handle, 1);
        if (r == 0) {
            Py_RETURN_NONE;
        }
        /* Nothing was given: the slow path tries again and says why not. */
    }
    return call_slow((PyObject *)self, "_release_slow", args, nargs, kwnames);
}

static PyObject *
semcore_bind(SemCore *self, PyObject *args)
{
    int robust, handle, waiter;
    PyObject *sleeper;
    if (!PyArg_ParseTuple(args, "piiO:_bind", &robust, &handle, &waiter, &sleeper)) {
        return NULL;
    }
    if (sleeper != Py_None && !PyObject_CheckBuffer(sleeper)) {
        PyErr_SetString(PyExc_TypeError, "_bind: sleeper must be a writable mapping or None");
        return NULL;
    }
    Py_XINCREF(sleeper == Py_None ? NULL : sleeper);
    Py_XSETREF(self->sleeper, sleeper == Py_None ? NULL : sleeper);
    self->robust = robust;
    self->handle = handle;
    self->waiter = waiter;
    self->bound = 1;
    Py_RETURN_NONE;
}

static int
semcore_traverse(SemCore *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));    /* a heap type's instances hold it */
    Py_VISIT(self->sleeper);
    return 0;
}

static int
semcore_clear(SemCore *self)
{
    Py_CLEAR(self->sleeper);
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
    {"_bind", (PyCFunction)semcore_bind, METH_VARARGS,
     "_bind($self, robust, handle, waiter, sleeper, /)\n--\n\n"
     "What acquire() and release() use: the kind, the eventfd or set id, the\n"
     "epoll fd (or -1) and the sleeper page (or None)."},
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
