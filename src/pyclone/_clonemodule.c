/* _clonemodule.c - pyclone._clone, the C core of pyclone.
 *
 * An implementation detail: the public API, argument checking, flag rules
 * and error messages live in the Python package.  Each entry point here
 * parses, makes its system calls and builds a result; on failure it raises
 * OSError from errno, naming the call (see raise_errno).
 *
 * The C core itself is in _c/, one concept per file (in_child.c: what runs
 * in a child before Python; host.c: thread mode's host threads; ...).  This
 * file is its entry: argument parsing and the method table, whose
 * docstrings say what each entry point takes and returns.
 */
#define _GNU_SOURCE
#include "_c/compat.h"

#ifndef PYCLONE_VERSION
#  define PYCLONE_VERSION "unknown"       /* built without setup.py */
#endif

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <gnu/libc-version.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "_c/in_child.h"
#include "_c/kernel_abi.h"
#include "_c/cstack.h"
#include "_c/frames.h"
#include "_c/host.h"
#include "_c/sem.h"
#include "_c/sem_type.h"
#include "_c/raw_clone.h"
#include "_c/stack.h"
#include "_c/terminate.h"
#include "_c/tstate.h"
#include "_c/watchdog.h"


/* clone3's extras of one request, and where the pidfd lands. */
struct clone_extras {
    int given;
    int pidfd;
    pid_t set_tid[MAX_SET_TID];
};

/* Parses extras (None, or (want_pidfd, cgroup_fd, set_tid tuple)) into
 * `req`, which must already hold flags and exit signal.  The Python layer
 * has checked the values; this only converts them. */
static int
parse_extras(PyObject *obj, struct clone_request *req, struct clone_extras *x)
{
    x->given = 0;
    x->pidfd = -1;
    if (obj == NULL || obj == Py_None) {
        return 0;
    }
    int want_pidfd, cgroup_fd;
    PyObject *set_tid;
    if (!PyArg_ParseTuple(obj, "piO!:extras", &want_pidfd, &cgroup_fd, &PyTuple_Type,
                          &set_tid)) {
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(set_tid);
    if (n > MAX_SET_TID) {
        PyErr_Format(PyExc_ValueError, "set_tid holds at most %d pids", MAX_SET_TID);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        long v = PyLong_AsLong(PyTuple_GET_ITEM(set_tid, i));
        if (v == -1 && PyErr_Occurred()) {
            return -1;
        }
        x->set_tid[i] = (pid_t)v;
    }
    x->given = 1;
    req->cgroup_fd = cgroup_fd;
    req->set_tid = n ? x->set_tid : NULL;
    req->set_tid_size = (size_t)n;
    if (want_pidfd) {
        req->flags |= CLONE_PIDFD_BIT;
        req->pidfd_out = &x->pidfd;
    }
    return 0;
}

/* The entry points' result: the pid, or (pid, pidfd) when extras were given. */
static PyObject *
clone_result(pid_t pid, const struct clone_extras *x)
{
    if (!x->given) {
        return PyLong_FromLong((long)pid);
    }
    return Py_BuildValue("ii", (int)pid, x->pidfd);
}

/* Sets OSError(err, "<strerror> (<call>)"), of the errno subclass the
 * OSError constructor picks (PermissionError for EPERM, ...).  Returns NULL. */
static PyObject *
raise_errno(int err, const char *call)
{
    PyObject *exc = PyObject_CallFunction(PyExc_OSError, "is", err,
                                          strerror(err));
    if (exc != NULL) {
        PyObject *text = PyUnicode_FromFormat("%s (%s)", strerror(err), call);
        if (text != NULL) {
            (void)PyObject_SetAttrString(exc, "strerror", text);
            Py_DECREF(text);
        }
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

/* os.fork's refusals: no clone during finalisation or from a
 * sub-interpreter (PyOS_AfterFork_Child and the thread-state lending both
 * assume the main interpreter). */
static int
refuse_context(void)
{
    if (compat_is_finalizing()) {
        PyErr_SetString(PyExc_RuntimeError,
                        "pyclone: cannot clone while the interpreter is finalizing");
        return -1;
    }
    if (PyThreadState_GetInterpreter(PyThreadState_Get()) != PyInterpreterState_Main()) {
        PyErr_SetString(PyExc_RuntimeError,
                        "pyclone: clone is only supported in the main interpreter");
        return -1;
    }
    return 0;
}

/* The Python layer's callable `name` of pyclone._core, for this
 * interpreter (a new reference): `kept`, which the main interpreter's
 * import set, or, in another interpreter, its own (C statics are shared by
 * every interpreter; an object of one must not be called from another). */
static PyObject *
python_layer(PyObject *kept, const char *name)
{
    if (PyInterpreterState_Get() != PyInterpreterState_Main()) {
        PyObject *core = PyImport_ImportModule("pyclone._core");
        PyObject *obj = core == NULL ? NULL : PyObject_GetAttrString(core, name);
        Py_XDECREF(core);
        return obj;
    }
    if (kept == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "pyclone._core is not initialised");
        return NULL;
    }
    Py_INCREF(kept);
    return kept;
}

#if !PYCLONE_HAVE_VM_MODES
static PyObject *
refuse_vm_modes(void)
{
    PyErr_SetString(PyExc_NotImplementedError,
                    "pyclone: CLONE_VM children are not supported on free-threaded builds");
    return NULL;
}
#endif

/* read() that retries EINTR and short reads; returns bytes read (0 = EOF). */
static ssize_t
read_all(int fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return got ? (ssize_t)got : n;
        }
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* waitpid() for a child we must reap now (a setup failure, an
 * intermediate); signals are left for the interpreter to run later. */
static void
reap_now(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, __WALL) < 0 && errno == EINTR) {
    }
}

static const char *
stage_call(int stage)
{
    switch (stage) {
    case STAGE_UNSHARE: return "unshare (in the child)";
    case STAGE_CLONE: return "clone (in the intermediate child)";
    default: return "child setup";
    }
}

/* ---- fork mode -------------------------------------------------------- */

/* Threads of this process besides the caller and pyclone's parked hosts
 * (which hold no lock), from /proc/self/stat as os.fork counts them; -1 if
 * unknown.  Plain system calls: used between fork and
 * PyOS_AfterFork_Parent, where os.fork counts. */
static int
count_other_threads(void)
{
    char buf[1024];
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    ssize_t n = read_all(fd, buf, sizeof buf - 1);
    (void)close(fd);
    if (n <= 0) {
        return -1;
    }
    buf[n] = '\0';
    char *p = strrchr(buf, ')');        /* the command name may hold spaces */
    /* Fields after the name: state is field 3, num_threads field 20. */
    for (int field = 2; p != NULL && field < 20; field++) {
        p = strchr(p + 1, ' ');
    }
    if (p == NULL) {
        return -1;
    }
    int threads = atoi(p + 1);
    return threads - 1 - host_parked_count();
}

/* The positional arguments the clone_* entry points share, METH_FASTCALL
 * (no argument tuple, no format string, no object written on the hot
 * path -- in fork mode each would be a copy-on-write fault): (fn, args
 * tuple, kwargs dict or None, flags, exit_signal, ...), min..max of them,
 * checked by the Python layer.  `call` borrows the caller's references. */
static int
parse_start(const char *name, PyObject *const *args, Py_ssize_t nargs, Py_ssize_t min,
            Py_ssize_t max, struct call_plan *call, unsigned long long *flags,
            int *exit_signal)
{
    if (nargs < min || nargs > max || !PyTuple_Check(args[1])
        || (args[2] != Py_None && !PyDict_Check(args[2]))) {
        PyErr_Format(PyExc_TypeError, "%s: (fn, args tuple, kwargs dict or None, flags, "
                     "exit_signal, ...) expected, %zd to %zd arguments", name, min, max);
        return -1;
    }
    call->fn = args[0];
    call->args = args[1];
    call->kwargs = args[2] == Py_None ? NULL : args[2];
    *flags = PyLong_AsUnsignedLongLong(args[3]);
    if (*flags == (unsigned long long)-1 && PyErr_Occurred()) {
        return -1;
    }
    int overflow;
    long sig = PyLong_Check(args[4]) ? PyLong_AsLongAndOverflow(args[4], &overflow) : -1;
    if (sig < 0 || sig > 64) {
        if (!PyErr_Occurred()) {
            PyErr_Format(PyExc_ValueError, "%s: exit signal not 0..64", name);
        }
        return -1;
    }
    *exit_signal = (int)sig;
    return 0;
}

/* A stack size argument: a non-negative int. */
static int
parse_size(const char *name, PyObject *arg, Py_ssize_t *size)
{
    *size = PyLong_Check(arg) ? PyLong_AsSsize_t(arg) : -1;
    if (*size < 0) {
        if (!PyErr_Occurred()) {
            PyErr_Format(PyExc_ValueError, "%s: a stack size must be an int >= 0", name);
        }
        return -1;
    }
    return 0;
}

static int single_threaded(void);

/* The count made by the calling thread's last clone_fork(count_threads=1). */
static __thread int threads_at_last_fork = -1;

static PyObject *
clone_fork(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    struct call_plan call;
    unsigned long long flags, unshare_flags;
    int exit_signal;
    if (parse_start("clone_fork", args, nargs, 7, 9, &call, &flags, &exit_signal) < 0) {
        return NULL;
    }
    long method = PyLong_Check(args[5]) ? PyLong_AsLong(args[5]) : -1;
    if (method != FORK_RAW && method != FORK_LIBC && method != FORK_LIBC_INTERMEDIATE) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "clone_fork: method must be a FORK_* constant");
        }
        return NULL;
    }
    unshare_flags = PyLong_AsUnsignedLongLong(args[6]);
    if (unshare_flags == (unsigned long long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *extras_obj = nargs > 7 ? args[7] : NULL;
    int count_threads = nargs > 8 ? PyObject_IsTrue(args[8]) : 0;
    if (count_threads < 0) {
        return NULL;
    }
    struct clone_request req = {flags, exit_signal, -1, NULL, 0, NULL};
    struct clone_extras extras;
    if (parse_extras(extras_obj, &req, &extras) < 0) {
        return NULL;
    }
    if (method != FORK_RAW && (req.cgroup_fd >= 0 || req.set_tid_size)) {
        PyErr_SetString(PyExc_ValueError, "cgroup and set_tid need the raw clone");
        return NULL;
    }
    if (refuse_context() < 0) {
        return NULL;
    }

    int pipefd[2] = {-1, -1};
    int needs_report = method == FORK_LIBC_INTERMEDIATE
                       || (method == FORK_LIBC && unshare_flags != 0);
    if (needs_report && pipe2(pipefd, O_CLOEXEC) != 0) {
        return raise_errno(errno, "pipe2");
    }

    sigset_t all, old;
    sigfillset(&all);
    struct fork_child_plan child = {(int)method, unshare_flags, 0, pipefd[1], &old, call};
    int used_clone3 = 0;

    /* os.fork's order: PyOS_BeforeFork last, nothing that can fail after
     * it; every signal blocked across the clone so that no handler runs in
     * the child before PyOS_AfterFork_Child (glibc's _Fork does the same). */
    PyOS_BeforeFork();
    (void)pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = method == FORK_RAW ? rawclone_fork_like(&req, &used_clone3) : fork();
    int saved_errno = errno;
    if (pid == 0) {
        /* fork() and the legacy clone cannot carry CLONE_CLEAR_SIGHAND. */
        child.clear_sighand = (flags & CLONE_CLEAR_SIGHAND_BIT) && !used_clone3;
        child_after_fork(&child);
    }
    (void)pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (count_threads && pid > 0) {
        threads_at_last_fork = count_other_threads();   /* before the hooks run */
    }
    PyOS_AfterFork_Parent();

    if (pipefd[1] >= 0) {
        (void)close(pipefd[1]);
    }
    if (pid < 0) {
        if (pipefd[0] >= 0) {
            (void)close(pipefd[0]);
        }
        return raise_errno(saved_errno, method != FORK_RAW ? "fork"
                                       : used_clone3 ? "clone3" : "clone");
    }
    if (pipefd[0] >= 0) {
        struct child_report rep = {STAGE_OK, 0, 0};
        ssize_t n;
        Py_BEGIN_ALLOW_THREADS
        n = read_all(pipefd[0], &rep, sizeof rep);
        if (method == FORK_LIBC_INTERMEDIATE || (n == (ssize_t)sizeof rep && rep.stage != STAGE_OK)) {
            reap_now(pid);      /* the intermediate, or a child that failed setup */
        }
        Py_END_ALLOW_THREADS
        (void)close(pipefd[0]);
        if (n == (ssize_t)sizeof rep && rep.stage != STAGE_OK) {
            return raise_errno(rep.err, stage_call(rep.stage));
        }
        if (method == FORK_LIBC_INTERMEDIATE) {
            if (n != (ssize_t)sizeof rep) {
                PyErr_SetString(PyExc_ChildProcessError,
                                "pyclone: the intermediate child died before reporting");
                return NULL;
            }
            pid = rep.pid;
        }
    }
    if (req.pidfd_out != NULL && method != FORK_RAW) {
        /* fork() cannot carry CLONE_PIDFD.  The child is ours and unreaped
         * (nobody else waits for it unless another thread waits for any
         * child), so its pid cannot have been reused yet. */
        extras.pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (extras.pidfd < 0) {
            int err = errno;
            (void)kill(pid, SIGKILL);
            Py_BEGIN_ALLOW_THREADS
            reap_now(pid);
            Py_END_ALLOW_THREADS
            return raise_errno(err, "pidfd_open");
        }
    }
    return clone_result(pid, &extras);
}

/* ---- borrowed mode ---------------------------------------------------- */

/* The last child this thread's borrowed clone returned: it has released our
 * memory (by _exit, a signal or exec) but is usually not a zombie yet - the
 * kernel wakes us before it has finished exiting - so waitpid() skips its
 * first look for it, which would fail and cost a system call. */
static __thread pid_t vfork_child_released;

static PyObject *
clone_borrowed(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
#if PYCLONE_HAVE_VM_MODES
    struct call_plan call;
    unsigned long long flags;
    int exit_signal;
    Py_ssize_t carve_min, map_size;
    if (parse_start("clone_borrowed", args, nargs, 7, 8, &call, &flags, &exit_signal) < 0
        || parse_size("clone_borrowed", args[5], &carve_min) < 0
        || parse_size("clone_borrowed", args[6], &map_size) < 0) {
        return NULL;
    }
    PyObject *extras_obj = nargs > 7 ? args[7] : NULL;
    struct clone_request req = {flags, exit_signal, -1, NULL, 0, NULL};
    struct clone_extras extras;
    if (parse_extras(extras_obj, &req, &extras) < 0) {
        return NULL;
    }
    if (refuse_context() < 0) {
        return NULL;
    }

    struct borrowed_plan plan;
    plan.call = call;
    plan.clean = 0;
    plan.tid = 0;
    plan.flags = flags;
    plan.tstate = tstate_for_child(PyThreadState_GetInterpreter(PyThreadState_Get()));
    if (plan.tstate == NULL) {
        return PyErr_NoMemory();
    }
    struct child_stack st;
    if (stack_acquire(&st, (size_t)carve_min, (size_t)map_size) != 0) {
        int err = errno;
        tstate_release_child(plan.tstate, NULL, 1);
        return raise_errno(err, "mmap (child stack)");
    }
    cstack_set(plan.tstate, st.low, st.top);

    struct vm_start start = {child_borrowed_main, &plan, st.top, NULL, NULL, NULL};
    if (req.pidfd_out == NULL) {
        /* The kernel stores the child's tid for terminate() before the
         * child runs: no gettid() in the child.  (The legacy call returns
         * a pidfd through the same pointer: then the child asks.) */
        req.flags |= CLONE_PARENT_SETTID;
        start.parent_tid = (pid_t *)&plan.tid;
    }
    /* Release the GIL so other threads run while this one is suspended.
     * The child starts with our mask: a signal it gets before its thread
     * state is attached runs CPython's C-level handler, which needs none
     * (it trips a flag and writes the wakeup fd, saving errno).  Only a
     * child that may have to reset its handlers itself (CLONE_CLEAR_SIGHAND
     * without clone3) starts with every signal blocked, until it has. */
    vm_register(&plan.vm, &plan.tid);
    PyThreadState *parent = PyEval_SaveThread();
    plan.blocked_start = (flags & CLONE_CLEAR_SIGHAND_BIT) != 0;
    if (plan.blocked_start) {
        sigset_t all;
        sigfillset(&all);
        (void)pthread_sigmask(SIG_SETMASK, &all, &plan.mask);
    }
    pid_t pid = rawclone_vm(&req, &start, &plan.clear_sighand);
    int saved_errno = errno;
    /* Before this thread reuses the stack the child ran on. */
    void *abandoned = pid >= 0 && !plan.clean ? frames_abandon(plan.tstate) : NULL;
    if (plan.blocked_start) {
        (void)pthread_sigmask(SIG_SETMASK, &plan.mask, NULL);
    }
    if (pid >= 0 && !plan.clean && !plan.vm.killed_safely) {
        watchdog_check(pid, compat_current_tstate() == plan.tstate);
    }
    tstate_settle_borrowed(parent, plan.tstate, &plan.vm, abandoned, plan.clean || pid < 0);
    vm_unregister(&plan.vm);
    stack_release(&st);
    if (pid < 0) {
        return raise_errno(saved_errno, extras.given ? "clone3" : "clone");
    }
    vfork_child_released = pid;
    return clone_result(pid, &extras);
#else
    return refuse_vm_modes();
#endif
}

/* ---- thread mode ------------------------------------------------------ */

static PyObject *
clone_thread(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
#if PYCLONE_HAVE_VM_MODES
    struct call_plan call;
    unsigned long long flags;
    int exit_signal;
    Py_ssize_t stack_size;
    if (parse_start("clone_thread", args, nargs, 6, 7, &call, &flags, &exit_signal) < 0
        || parse_size("clone_thread", args[5], &stack_size) < 0) {
        return NULL;
    }
    PyObject *extras_obj = nargs > 6 ? args[6] : NULL;
    if (refuse_context() < 0) {
        return NULL;
    }
    struct thread_job *job = PyMem_RawCalloc(1, sizeof *job);
    if (job == NULL) {
        return PyErr_NoMemory();
    }
    struct clone_extras extras;
    job->req = (struct clone_request){flags, exit_signal, -1, NULL, 0, NULL};
    if (parse_extras(extras_obj, &job->req, &extras) < 0) {
        PyMem_RawFree(job);
        return NULL;
    }
    /* The job outlives this call's locals: point into it. */
    memcpy(job->set_tid, extras.set_tid, sizeof job->set_tid);
    if (job->req.set_tid != NULL) {
        job->req.set_tid = job->set_tid;
    }
    if (job->req.pidfd_out != NULL) {
        job->pidfd = -1;
        job->req.pidfd_out = &job->pidfd;
    }
    job->call = call;
    job->flags = flags;
    job->exit_signal = exit_signal;
    job->stack_size = (size_t)stack_size;
    pid_t pid = host_start(job, &extras.pidfd);
    if (pid < 0) {
        return raise_errno(errno, extras.given ? "clone3 (thread mode)" : "clone (thread mode)");
    }
    return clone_result(pid, &extras);
#else
    return refuse_vm_modes();
#endif
}

/* ---- clone(): the plain requests without a Python frame ---------------- */

/* Set once by pyclone._core (set_clone_paths).  The Python layer decides
 * everything: `full` is its clone(), which checks a request completely and,
 * for a flags word whose plain requests (fn and, at most, an args tuple)
 * need nothing but the flags' verdict, records in `plain` what to do:
 * flags -> (start, audit_flags, mode, tail), tail being the arguments of
 * the start entry point after (fn, args, kwargs).  This only looks it up,
 * raises the audit event, and calls the entry point as the Python layer's
 * launch() would; anything else, and every error, goes to Python. */
static PyObject *clone_full, *plain_requests, *plain_flag_types, *clone_refused,
                *guard_claimed, *default_flags, *no_args;

enum {
    START_FORK,                 /* clone_fork */
    START_FORK_IF_SINGLE,       /* the same, if no thread could make os.fork warn */
    START_BORROWED,             /* clone_borrowed (after the guard claim) */
    START_THREAD,               /* clone_thread */
};

static PyObject *clone_fork(PyObject *, PyObject *const *, Py_ssize_t);
static PyObject *clone_borrowed(PyObject *, PyObject *const *, Py_ssize_t);
static PyObject *clone_thread(PyObject *, PyObject *const *, Py_ssize_t);

/* The plan for (fn, flags, args) if it is a plain request the Python layer
 * recorded (a new reference), else NULL: with an error set, or not. */
static PyObject *
plain_plan(PyObject *fn, PyObject *flags, PyObject *args)
{
    if (plain_requests == NULL || !PyTuple_CheckExact(args) || !PyCallable_Check(fn)) {
        return NULL;
    }
    if (!PyLong_CheckExact(flags)) {
        /* Only types with int's hash and == (CloneFlags, signal.Signals),
         * so that the lookup runs no code of the caller's. */
        int known = PySet_Contains(plain_flag_types, (PyObject *)Py_TYPE(flags));
        if (known <= 0) {
            return NULL;
        }
    }
    PyObject *plan = PyDict_GetItemWithError(plain_requests, flags);
    if (plan == NULL || !PyTuple_CheckExact(plan) || PyTuple_GET_SIZE(plan) != 4) {
        return NULL;
    }
    long start = PyLong_AsLong(PyTuple_GET_ITEM(plan, 0));
    if (start == START_FORK_IF_SINGLE && !single_threaded()) {
        return NULL;            /* os.fork's threads warning: the full path gives it */
    }
    Py_INCREF(plan);
    return plan;
}

static PyObject *
clone_(PyObject *module, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    PyObject *plan = NULL;
    /* clone(fn[, flags][, args=tuple]): the only shapes looked up; in the
     * main interpreter only (plain_requests is its). */
    if (nargs >= 1 && PyInterpreterState_Get() == PyInterpreterState_Main() && nargs <= 2
            && (nkw == 0 || (nkw == 1 && PyUnicode_CompareWithASCIIString(
                                 PyTuple_GET_ITEM(kwnames, 0), "args") == 0))) {
        plan = plain_plan(args[0], nargs == 2 ? args[1] : default_flags,
                          nkw == 1 ? args[nargs] : no_args);
        if (plan == NULL && PyErr_Occurred()) {
            return NULL;
        }
    }
    if (plan == NULL) {
        PyObject *full = python_layer(clone_full, "_clone_full");
        PyObject *r = full == NULL ? NULL : PyObject_Vectorcall(full, args, nargsf, kwnames);
        Py_XDECREF(full);
        return r;
    }
    long start = PyLong_AsLong(PyTuple_GET_ITEM(plan, 0));
    PyObject *tail = PyTuple_GET_ITEM(plan, 3);
    PyObject *call[3 + 4] = {args[0], nkw == 1 ? args[nargs] : no_args, Py_None};
    Py_ssize_t ncall = 3 + PyTuple_GET_SIZE(tail);
    PyObject *pid = NULL;
    if (!PyTuple_CheckExact(tail) || ncall > 7) {
        PyErr_SetString(PyExc_SystemError, "clone: a malformed plain request");
        goto done;
    }
    for (Py_ssize_t i = 3; i < ncall; i++) {
        call[i] = PyTuple_GET_ITEM(tail, i - 3);
    }
    /* launch()'s order: the audit event before anything else happens. */
    if (PySys_Audit("pyclone.clone", "OO", PyTuple_GET_ITEM(plan, 1),
                    PyTuple_GET_ITEM(plan, 2)) < 0) {
        goto done;
    }
    switch (start) {
    case START_FORK:
    case START_FORK_IF_SINGLE:
        if (flush_std_streams() < 0) {      /* never duplicate buffered output */
            goto done;
        }
        pid = clone_fork(module, call, ncall);
        break;
    case START_BORROWED:
        /* The first CLONE_VM child of this thread: the Python layer gives
         * the thread its guard (a thread-local that drops the spare state). */
        if (tstate_claim_guard()) {
            PyObject *r = PyObject_CallNoArgs(guard_claimed);
            if (r == NULL) {
                goto done;
            }
            Py_DECREF(r);
        }
        pid = clone_borrowed(module, call, ncall);
        break;
    case START_THREAD:
        pid = clone_thread(module, call, ncall);
        break;
    default:
        PyErr_SetString(PyExc_SystemError, "clone: a malformed plain request");
        break;
    }
    if (pid == NULL && PyErr_ExceptionMatches(PyExc_OSError)) {
        /* A refused clone: the Python layer raises it, or a clearer error
         * that says what to change. */
        PyObject *exc = compat_take_exception();
        PyObject *r = PyObject_CallFunctionObjArgs(clone_refused, exc, call[3], Py_None, NULL);
        Py_XDECREF(exc);
        if (r != NULL) {
            Py_DECREF(r);
            PyErr_SetString(PyExc_SystemError, "clone: the refusal was not raised");
        }
    }
done:
    Py_DECREF(plan);
    return pid;
}

static PyObject *
set_clone_paths(PyObject *module, PyObject *args)
{
    PyObject *full, *plain, *types, *refused, *claimed;
    if (!PyArg_ParseTuple(args, "OO!O!OO:set_clone_paths", &full, &PyDict_Type, &plain,
                          &PySet_Type, &types, &refused, &claimed)) {
        return NULL;
    }
    if (PyInterpreterState_Get() != PyInterpreterState_Main()) {
        Py_RETURN_NONE;         /* clones are refused there: keep the main interpreter's */
    }
    if (default_flags == NULL
            && ((default_flags = PyLong_FromLong(SIGCHLD)) == NULL
                || (no_args = PyTuple_New(0)) == NULL)) {
        return NULL;
    }
    Py_INCREF(full);
    Py_INCREF(plain);
    Py_INCREF(types);
    Py_INCREF(refused);
    Py_INCREF(claimed);
    Py_XSETREF(clone_full, full);
    Py_XSETREF(plain_requests, plain);
    Py_XSETREF(plain_flag_types, types);
    Py_XSETREF(clone_refused, refused);
    Py_XSETREF(guard_claimed, claimed);
    Py_RETURN_NONE;
}

#if PYCLONE_HAVE_VM_MODES
/* CLONE_THREAD children cannot be waited for: joins `tid` if it is one.
 * -1 if it is not, 0 if it still runs and nohang, else 1 and *wstatus the
 * wait status a process would have: WIFSIGNALED for a child that ended as
 * killed (pyclone.Terminated), else WIFEXITED.  GIL held. */
static int
join_thread_child(pid_t tid, int nohang, int *wstatus)
{
    int status = 0;
    /* A look first, with the GIL (the registry lock is never held while
     * waiting for the GIL); release it only to wait. */
    int r = host_join_thread(tid, 1, &status);
    if (r == 0 && !nohang) {
        Py_BEGIN_ALLOW_THREADS
        r = host_join_thread(tid, 0, &status);
        Py_END_ALLOW_THREADS
    }
    if (r == 1) {
        *wstatus = status < 0 ? (-status) & 0x7f : (status & 0xff) << 8;
    }
    return r;
}
#endif

static PyObject *
join_thread_children(PyObject *module, PyObject *unused)
{
    Py_BEGIN_ALLOW_THREADS
    host_join_all();
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *
threads_at_fork(PyObject *module, PyObject *unused)
{
    return PyLong_FromLong(threads_at_last_fork);
}

static PyObject *
parked_hosts(PyObject *module, PyObject *unused)
{
    return PyLong_FromLong(host_parked_count());
}

static PyObject *
lent_hosts(PyObject *module, PyObject *unused)
{
    return PyLong_FromLong(host_lent_count());
}

static PyObject *
after_fork_child(PyObject *module, PyObject *unused)
{
    tstate_forget_spare();
    host_after_fork_child();
    vm_after_fork_child();
    Py_RETURN_NONE;
}

/* ---- child setup the os module lacks ---------------------------------- */

static PyObject *
set_pdeathsig(PyObject *module, PyObject *args)
{
    int sig;
    if (!PyArg_ParseTuple(args, "i:set_pdeathsig", &sig)) {
        return NULL;
    }
    if (prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0UL, 0UL, 0UL) != 0) {
        return raise_errno(errno, "prctl(PR_SET_PDEATHSIG)");
    }
    Py_RETURN_NONE;
}

static PyObject *
terminate_vm(PyObject *module, PyObject *args)
{
    int tid;
    PyObject *exc_type;
    double timeout;
    if (!PyArg_ParseTuple(args, "iOd:terminate_vm", &tid, &exc_type, &timeout)) {
        return NULL;
    }
    return PyLong_FromLong(terminate_vm_child((pid_t)tid, exc_type, timeout));
}

static PyObject *
signal_at_safe_point(PyObject *module, PyObject *args)
{
    int tid, sig;
    if (!PyArg_ParseTuple(args, "ii:signal_at_safe_point", &tid, &sig)) {
        return NULL;
    }
    return PyLong_FromLong(terminate_signal_at_safe_point((pid_t)tid, sig));
}

/* The calling process's disposition of `sig`: 0 default, 1 ignored, 2 a
 * handler (the kernel's view; Python's table can disagree under CLONE_VM). */
static PyObject *
signal_disposition(PyObject *module, PyObject *args)
{
    int sig;
    if (!PyArg_ParseTuple(args, "i:signal_disposition", &sig)) {
        return NULL;
    }
    struct sigaction sa;
    if (sigaction(sig, NULL, &sa) != 0) {
        return raise_errno(errno, "sigaction");
    }
    int kind = sa.sa_handler == SIG_DFL ? 0 : sa.sa_handler == SIG_IGN ? 1 : 2;
    return PyLong_FromLong(kind);
}

/* A signal to one thread of this process, by tid (os.kill would signal the
 * whole thread group). */
static PyObject *
signal_thread(PyObject *module, PyObject *args)
{
    int tid, sig;
    if (!PyArg_ParseTuple(args, "ii:signal_thread", &tid, &sig)) {
        return NULL;
    }
    if (syscall(SYS_tgkill, getpid(), tid, sig) != 0) {
        return raise_errno(errno, "tgkill");
    }
    Py_RETURN_NONE;
}

/* ---- waiting ---------------------------------------------------------- */

/* The 16 fields of struct rusage in resource.struct_rusage's order, times
 * as float seconds (as os.wait4 gives them). */
static PyObject *
rusage_tuple(const struct rusage *ru)
{
    return Py_BuildValue(
        "(ddllllllllllllll)",
        (double)ru->ru_utime.tv_sec + ru->ru_utime.tv_usec * 1e-6,
        (double)ru->ru_stime.tv_sec + ru->ru_stime.tv_usec * 1e-6,
        ru->ru_maxrss, ru->ru_ixrss, ru->ru_idrss, ru->ru_isrss,
        ru->ru_minflt, ru->ru_majflt, ru->ru_nswap, ru->ru_inblock,
        ru->ru_oublock, ru->ru_msgsnd, ru->ru_msgrcv, ru->ru_nsignals,
        ru->ru_nvcsw, ru->ru_nivcsw);
}

/* pid and options as C ints: 0, or -1 with an exception set. */
static int
wait_ints(PyObject *pid_o, PyObject *options_o, int *pid, unsigned int *options)
{
    long pid_l = PyLong_AsLong(pid_o);
    unsigned long options_l = PyLong_AsUnsignedLong(options_o);
    if ((pid_l == -1 || options_l == (unsigned long)-1) && PyErr_Occurred()) {
        return -1;
    }
    if (pid_l < INT_MIN || pid_l > INT_MAX || options_l > 0xffffffffUL) {
        PyErr_SetString(PyExc_OverflowError, "pid or options out of range");
        return -1;
    }
    *pid = (int)pid_l;
    *options = (unsigned int)options_l;
    return 0;
}

static PyObject *wait_impl(int pid, unsigned int options, int with_rusage);

static PyObject *
wait_pid(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    /* METH_FASTCALL, ints already checked by the Python layer (wait4). */
    if (nargs < 2 || nargs > 3 || !PyLong_Check(args[0]) || !PyLong_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "wait_pid(pid, options[, with_rusage]): ints");
        return NULL;
    }
    int pid, with_rusage = nargs == 3 ? PyObject_IsTrue(args[2]) : 0;
    unsigned int options;
    if (with_rusage < 0 || wait_ints(args[0], args[1], &pid, &options) < 0) {
        return NULL;
    }
    return wait_impl(pid, options, with_rusage);
}

/* pyclone.waitpid itself, so that a fork-mode parent runs no Python frame
 * of pyclone's between the fork and the wait: every page it writes while
 * the child lives costs a copy-on-write fault (about 4 us each on our test
 * machine; on 3.9-3.11 even a small int's refcount is a write).  Plain ints
 * in range are used as they are; anything else goes to the Python layer's
 * checker first (pyclone._core._check_wait_args), which converts or says
 * what is wrong. */
static PyObject *wait_args_checker;     /* set_wait_args_checker() */

static PyObject *
waitpid_(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"pid", "options"};
    PyObject *given[2] = {NULL, NULL};
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError, "waitpid() takes at most 2 arguments (%zd given)", nargs);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        given[i] = args[i];
    }
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, k);
        int slot = -1;
        for (int j = 0; j < 2; j++) {
            if (PyUnicode_CompareWithASCIIString(name, names[j]) == 0) {
                slot = j;
            }
        }
        if (slot < 0) {
            PyErr_Format(PyExc_TypeError, "waitpid() got an unexpected keyword argument '%U'",
                         name);
            return NULL;
        }
        if (given[slot] != NULL) {
            PyErr_Format(PyExc_TypeError, "waitpid() got multiple values for argument '%s'",
                         names[slot]);
            return NULL;
        }
        given[slot] = args[nargs + k];
    }
    int pid = -1;
    unsigned int options = __WALL;
    int plain = (given[0] == NULL || PyLong_CheckExact(given[0]))
                && (given[1] == NULL || PyLong_CheckExact(given[1]));
    if (plain) {
        if (given[0] != NULL) {
            int overflow;
            long v = PyLong_AsLongAndOverflow(given[0], &overflow);
            plain = !overflow && v >= INT_MIN && v <= INT_MAX;
            pid = (int)v;
        }
        if (plain && given[1] != NULL) {
            int overflow;
            long v = PyLong_AsLongAndOverflow(given[1], &overflow);
            plain = !overflow && v >= 0 && v <= (long)0xffffffffL;
            options = (unsigned int)v;
        }
    }
    if (!plain) {
        PyObject *checker = python_layer(wait_args_checker, "_check_wait_args");
        if (checker == NULL) {
            return NULL;
        }
        PyObject *pid_o = given[0] ? (Py_INCREF(given[0]), given[0]) : PyLong_FromLong(-1);
        PyObject *opt_o = given[1] ? (Py_INCREF(given[1]), given[1])
                                   : PyLong_FromUnsignedLong(__WALL);
        PyObject *checked = pid_o && opt_o
            ? PyObject_CallFunctionObjArgs(checker, pid_o, opt_o, NULL) : NULL;
        Py_DECREF(checker);
        Py_XDECREF(pid_o);
        Py_XDECREF(opt_o);
        if (checked == NULL) {
            return NULL;
        }
        int ok = PyTuple_Check(checked) && PyTuple_GET_SIZE(checked) == 2
                 && wait_ints(PyTuple_GET_ITEM(checked, 0), PyTuple_GET_ITEM(checked, 1),
                              &pid, &options) == 0;
        Py_DECREF(checked);
        if (!ok) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_SystemError, "waitpid: the checker returned no (pid, options)");
            }
            return NULL;
        }
    }
    return wait_impl(pid, options, 0);
}

static PyObject *
set_wait_args_checker(PyObject *module, PyObject *checker)
{
    if (PyInterpreterState_Get() != PyInterpreterState_Main()) {
        Py_RETURN_NONE;         /* python_layer() finds that interpreter's own */
    }
    Py_INCREF(checker);
    Py_XSETREF(wait_args_checker, checker);
    Py_RETURN_NONE;
}

static PyObject *
wait_impl(int pid, unsigned int options, int with_rusage)
{
#if PYCLONE_HAVE_VM_MODES
    if (pid > 0 && !host_none()) {
        int wstatus = 0;
        int joined = join_thread_child((pid_t)pid, (options & WNOHANG) != 0, &wstatus);
        if (joined >= 0) {
            /* A thread of ours: the kernel keeps no rusage of it apart. */
            int got = joined ? pid : 0;
            return with_rusage ? Py_BuildValue("iiO", got, wstatus, Py_None)
                               : Py_BuildValue("ii", got, wstatus);
        }
    }
#endif
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);      /* what WNOHANG with nothing to reap gives */
    /* A look first, with the GIL, as threading's join does: a child that
     * has ended is reaped without a GIL hand-off.  With many tasks waiting
     * for the GIL, each hand-off puts this thread at the back of them all.
     * (Not for a thread-mode child known to run: it needs the GIL to end,
     * nor for the borrowed child just returned: it is still exiting.) */
    pid_t r = 0;
#if PYCLONE_HAVE_VM_MODES
    int look = options & WNOHANG || pid <= 0 || host_none() || !host_child_running(pid);
    if (pid > 0 && pid == vfork_child_released) {
        vfork_child_released = 0;           /* a hint for one wait */
        look = (options & WNOHANG) != 0;
    }
#else
    int look = 1;
#endif
    if (look) {
        r = wait4(pid, &status, (int)options | WNOHANG, with_rusage ? &ru : NULL);
    }
    while (r == 0 && !(options & WNOHANG)) {
        Py_BEGIN_ALLOW_THREADS
        r = wait4(pid, &status, (int)options, with_rusage ? &ru : NULL);
        Py_END_ALLOW_THREADS
        if (r < 0 && errno == EINTR) {
            if (PyErr_CheckSignals() < 0) {     /* PEP 475 */
                return NULL;
            }
            r = 0;                              /* and wait again */
        }
    }
    if (r < 0) {
        return raise_errno(errno, "waitpid");
    }
#if PYCLONE_HAVE_VM_MODES
    if (r > 0 && !host_none() && !host_settled(r)) {
        /* A thread-mode child's host is still cleaning up after it. */
        Py_BEGIN_ALLOW_THREADS
        host_wait_settled(r);
        Py_END_ALLOW_THREADS
    }
#endif
    if (with_rusage) {
        PyObject *usage = rusage_tuple(&ru);
        if (usage == NULL) {
            return NULL;
        }
        return Py_BuildValue("iiN", (int)r, status, usage);
    }
    return Py_BuildValue("ii", (int)r, status);
}

/* ---- semaphores -------------------------------------------------------- */

static PyObject *
sem_eventfd(PyObject *module, PyObject *args)
{
    unsigned long long value;
    if (!PyArg_ParseTuple(args, "K:sem_eventfd", &value)) {
        return NULL;
    }
    int fd = sem_eventfd_new((uint64_t)value);
    return fd < 0 ? raise_errno(errno, "eventfd") : PyLong_FromLong(fd);
}

static PyObject *
sem_eventfd_hint(PyObject *module, PyObject *unused)
{
    int fd = sem_eventfd_hint_new();
    return fd < 0 ? raise_errno(errno, "eventfd") : PyLong_FromLong(fd);
}

static PyObject *
sem_eventfd_waiter(PyObject *module, PyObject *args)
{
    int fd, hint = -1;
    if (!PyArg_ParseTuple(args, "i|i:sem_eventfd_waiter", &fd, &hint)) {
        return NULL;
    }
    int ep = sem_eventfd_waiter_new(fd, hint);
    return ep < 0 ? raise_errno(errno, "epoll") : PyLong_FromLong(ep);
}

static PyObject *
sem_eventfd_blocking_(PyObject *module, PyObject *unused)
{
    return PyBool_FromLong(sem_eventfd_blocking());
}

static PyObject *
sem_sysv(PyObject *module, PyObject *args)
{
    int value;
    if (!PyArg_ParseTuple(args, "i:sem_sysv", &value)) {
        return NULL;
    }
    int id = sem_sysv_new(value);
    return id < 0 ? raise_errno(errno, "semget") : PyLong_FromLong(id);
}

static PyObject *
sem_sysv_rm(PyObject *module, PyObject *args)
{
    int id;
    if (!PyArg_ParseTuple(args, "i:sem_sysv_rm", &id)) {
        return NULL;
    }
    if (sem_sysv_remove(id) < 0) {
        return raise_errno(errno, "semctl IPC_RMID");
    }
    Py_RETURN_NONE;
}

static PyObject *
sem_sysv_getval(PyObject *module, PyObject *args)
{
    int id;
    if (!PyArg_ParseTuple(args, "i:sem_sysv_getval", &id)) {
        return NULL;
    }
    int v = sem_sysv_value(id);
    return v < 0 ? raise_errno(errno, "semctl GETVAL") : PyLong_FromLong(v);
}

/* ---- introspection ---------------------------------------------------- */

/* glibc >= 2.32 keeps __libc_single_threaded at 1 until the first thread is
 * created (and never sets it back): "true" is certain, "false" means "look".
 * Found at run time, so that a build against an older glibc (a manylinux
 * wheel) still uses it where the running glibc has it. */
static const char *libc_single_threaded;
static int libc_single_threaded_looked;

static int
single_threaded(void)
{
    if (!libc_single_threaded_looked) {
        libc_single_threaded = dlsym(RTLD_DEFAULT, "__libc_single_threaded");
        libc_single_threaded_looked = 1;
    }
    return libc_single_threaded != NULL && *libc_single_threaded != 0;
}

static PyObject *
process_single_threaded(PyObject *module, PyObject *unused)
{
    return PyBool_FromLong(single_threaded());
}

static PyObject *
set_exit_rules(PyObject *module, PyObject *args)
{
    PyObject *on_return, *on_exception;
    if (!PyArg_ParseTuple(args, "OO:set_exit_rules", &on_return, &on_exception)
        || child_set_exit_rules(on_return, on_exception) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
flush_std_streams_(PyObject *module, PyObject *unused)
{
    /* In C for fork mode's sake: every page the parent writes between two
     * forks costs it a copy-on-write fault per fork, and a Python loop over
     * the streams writes more of them than the two flush calls do. */
    if (flush_std_streams() < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
stack_room(PyObject *module, PyObject *unused)
{
    return PyLong_FromSize_t(stack_room_below_sp(0));
}

static PyObject *
stack_pointer(PyObject *module, PyObject *unused)
{
    char here;
    return PyLong_FromVoidPtr(&here);
}

static PyObject *
drop_spare(PyObject *module, PyObject *unused)
{
    tstate_guard_gone();
    tstate_drop_spare();
    Py_RETURN_NONE;
}

static PyObject *
claim_guard(PyObject *module, PyObject *unused)
{
    return PyBool_FromLong(tstate_claim_guard());
}

static PyObject *
forget_spare(PyObject *module, PyObject *unused)
{
    tstate_forget_spare();
    Py_RETURN_NONE;
}

static PyObject *
frame_layout(PyObject *module, PyObject *unused)
{
    return frames_layout();
}

static PyObject *
tid_fix_available(PyObject *module, PyObject *unused)
{
    return PyBool_FromLong(rawclone_tid_slot() != NULL);
}

static PyMethodDef clone_methods[] = {
    {"clone_fork", (PyCFunction)(void (*)(void))clone_fork, METH_FASTCALL,
     "clone_fork($module, fn, args, kwargs, flags, exit_signal, method, unshare_flags, extras=None, count_threads=False, /)\n--\n\n"
     "Fork-mode clone made by `method` (FORK_RAW, FORK_LIBC, FORK_LIBC_INTERMEDIATE);\n"
     "the child calls fn(*args, **kwargs) (kwargs a dict or None) and exits with\n"
     "the status that the exit rules give (set_exit_rules).  Returns the pid, or\n"
     "(pid, pidfd or -1) when extras = (want_pidfd, cgroup_fd, set_tid) is given."},
    {"clone", (PyCFunction)(void (*)(void))clone_, METH_FASTCALL | METH_KEYWORDS,
     "clone($module, /, fn, flags=" PYCLONE_STR(SIGCHLD) ", stack_size=None, *, args=(), kwargs=None)\n--\n\n"
     "Run ``fn(*args, **kwargs)`` in a new task made by clone(2); return its pid.\n"
     "\n"
     "``flags`` holds ``CLONE_*`` bits ORed with the exit signal in the low\n"
     "byte, as in C.  The mode follows from the flags:\n"
     "\n"
     "* no ``CLONE_VM`` - **fork mode**: the child runs in a copy of the\n"
     "  interpreter, like ``os.fork()`` (``os.register_at_fork`` hooks run).\n"
     "* ``CLONE_VM | CLONE_VFORK`` - **borrowed mode**: the child shares every\n"
     "  Python object; the calling thread is suspended until the child exits or\n"
     "  execs, other Python threads keep running.\n"
     "* ``CLONE_VM`` without ``CLONE_VFORK`` - **thread mode**: the child runs\n"
     "  concurrently, on a thread state and a libc thread environment (a\n"
     "  pooled host pthread's) of its own; ``clone`` returns at once.  With\n"
     "  ``CLONE_THREAD`` it is a thread of this process, joined by\n"
     "  ``waitpid(tid)``.\n"
     "\n"
     "The child's exit status: an int 0..255 returned by ``fn``; 0 for None or\n"
     "any other value; ``SystemExit`` as ``sys.exit``; 1 with the traceback on\n"
     "stderr for any other exception.  Reap the child with\n"
     ":func:`pyclone.waitpid` (or ``os.waitpid`` if its exit signal is SIGCHLD).\n"
     "\n"
     "Caveats: ``stack_size`` (default 8 MiB, at least MIN_STACK_SIZE) is a\n"
     "lower bound in borrowed mode, where the child runs on the free part of\n"
     "the caller's stack when it is large enough; in thread mode it is the\n"
     "free part of a host thread's stack of that size; in fork mode it is\n"
     "unused (any positive size is accepted): the child runs on its copy of\n"
     "the caller's stack, like os.fork.  No ``os.set*id``\n"
     "in a CLONE_VM child (glibc would apply it to the parent's threads): use\n"
     "fork mode.  CPython refuses ``signal.signal()`` in thread-mode children\n"
     "(not the main thread).  A fork-mode clone that only a raw clone can express warns in a\n"
     "process with other threads (see docs/fork-mode.md)."},
    {"set_clone_paths", set_clone_paths, METH_VARARGS,
     "set_clone_paths($module, full, plain, types, refused, guard_claimed, /)\n--\n\n"
     "What clone() needs of the Python layer: full(*args, **kw) is its whole\n"
     "path; plain maps a flags word to (START_*, audit flags, mode, tail) for\n"
     "requests of only fn (and an args tuple), looked up for flags of an exact\n"
     "int or a type in types; refused(exc, bits, None) raises for a refused\n"
     "clone; guard_claimed() when a thread makes its first CLONE_VM child."},
    {"set_exit_rules", set_exit_rules, METH_VARARGS,
     "set_exit_rules($module, on_return, on_exception, /)\n--\n\n"
     "What every child calls to end: on_return(result) or on_exception(exc) -> exit\n"
     "status (pyclone._exit registers its own at import)."},
    {"clone_borrowed", (PyCFunction)(void (*)(void))clone_borrowed, METH_FASTCALL,
     "clone_borrowed($module, fn, args, kwargs, flags, exit_signal, carve_min, map_size, extras=None, /)\n--\n\n"
     "CLONE_VM|CLONE_VFORK clone; returns once the child exited or exec'd: the\n"
     "pid, or (pid, pidfd or -1) with extras."},
    {"clone_thread", (PyCFunction)(void (*)(void))clone_thread, METH_FASTCALL,
     "clone_thread($module, fn, args, kwargs, flags, exit_signal, stack_size, extras=None, /)\n--\n\n"
     "Thread-mode clone on a host thread's TLS; returns once the child runs: the\n"
     "pid, or (pid, pidfd or -1) with extras."},
    {"join_thread_children", join_thread_children, METH_NOARGS,
     "join_thread_children($module)\n--\n\n"
     "Wait until every thread-mode child has finished."},
    {"threads_at_fork", threads_at_fork, METH_NOARGS,
     "threads_at_fork($module)\n--\n\n"
     "Other threads (parked hosts not counted) that the calling thread's last\n"
     "clone_fork(..., count_threads=True) saw before the after-fork hooks ran;\n"
     "-1 if unknown."},
    {"parked_hosts", parked_hosts, METH_NOARGS,
     "parked_hosts($module)\n--\n\n"
     "Host threads parked in the pool or lent to a child (they hold no lock)."},
    {"lent_hosts", lent_hosts, METH_NOARGS,
     "lent_hosts($module)\n--\n\n"
     "Host threads lent to a child that nobody has cleaned up after yet."},
    {"after_fork_child", after_fork_child, METH_NOARGS,
     "after_fork_child($module)\n--\n\n"
     "Forget what belonged to the parent's threads (in a fork child)."},
    {"sem_eventfd", sem_eventfd, METH_VARARGS,
     "sem_eventfd($module, value, /)\n--\n\n"
     "An EFD_SEMAPHORE eventfd holding value (close-on-exec; blocking where\n"
     "sem_eventfd_blocking() says so)."},
    {"sem_eventfd_hint", sem_eventfd_hint, METH_NOARGS,
     "sem_eventfd_hint($module, /)\n--\n\n"
     "A blocking eventfd (close-on-exec) that wakes the waiters of a\n"
     "semaphore whose count is kept in shared memory."},
    {"sem_eventfd_waiter", sem_eventfd_waiter, METH_VARARGS,
     "sem_eventfd_waiter($module, fd, hint=-1, /)\n--\n\n"
     "An epoll fd (close-on-exec) watching eventfd fd (and, edge-triggered,\n"
     "the hint eventfd): blocked waiters sleep on it, and a release wakes one\n"
     "of them instead of all."},
    {"sem_eventfd_blocking", sem_eventfd_blocking_, METH_NOARGS,
     "sem_eventfd_blocking($module, /)\n--\n\n"
     "Whether sem_eventfd() makes blocking eventfds, tried with\n"
     "preadv2(RWF_NOWAIT): then a semaphore may keep its count in a shared\n"
     "page, whose sleeper word lets one waiter sleep in read()."},
    {"sem_sysv", sem_sysv, METH_VARARGS,
     "sem_sysv($module, value, /)\n--\n\n"
     "The id of a new private System V semaphore set of one, holding value."},
    {"sem_sysv_rm", sem_sysv_rm, METH_VARARGS,
     "sem_sysv_rm($module, id, /)\n--\n\n"
     "Remove the semaphore set."},
    {"sem_sysv_getval", sem_sysv_getval, METH_VARARGS,
     "sem_sysv_getval($module, id, /)\n--\n\n"
     "The semaphore's value."},
    {"set_pdeathsig", set_pdeathsig, METH_VARARGS,
     "set_pdeathsig($module, sig, /)\n--\n\n"
     "prctl(PR_SET_PDEATHSIG, sig) for the calling thread."},
    {"terminate_vm", terminate_vm, METH_VARARGS,
     "terminate_vm($module, tid, exc_type, timeout, /)\n--\n\n"
     "0: tid is not a task sharing our memory; 1: exc_type is pending in it or\n"
     "raised; 2: signalled at a safe point, or already ending."},
    {"signal_at_safe_point", signal_at_safe_point, METH_VARARGS,
     "signal_at_safe_point($module, tid, sig, /)\n--\n\n"
     "1: sent while tid was stopped in a lock-free system call; 0: not at a\n"
     "safe point now; -1: gone."},
    {"signal_disposition", signal_disposition, METH_VARARGS,
     "signal_disposition($module, sig, /)\n--\n\n"
     "0 default, 1 ignored, 2 handled (from sigaction)."},
    {"signal_thread", signal_thread, METH_VARARGS,
     "signal_thread($module, tid, sig, /)\n--\n\n"
     "tgkill() to a thread of this process."},
    {"waitpid", (PyCFunction)(void (*)(void))waitpid_, METH_FASTCALL | METH_KEYWORDS,
     "waitpid($module, /, pid=-1, options=1073741824)\n--\n\n"
     "``os.waitpid`` for clone children: ``(pid, status)``, same encoding.\n\n"
     "Defaults to ``WALL`` so that children with any exit signal are found, and\n"
     "accepts ``WCLONE`` (0x80000000), which overflows ``os.waitpid``."},
    {"set_wait_args_checker", set_wait_args_checker, METH_O,
     "set_wait_args_checker($module, checker, /)\n--\n\n"
     "checker(pid, options) -> (pid, options) as ints, or raises: what waitpid()\n"
     "calls for arguments that are not plain ints in range."},
    {"wait_pid", (PyCFunction)(void (*)(void))wait_pid, METH_FASTCALL,
     "wait_pid($module, pid, options, with_rusage=False, /)\n--\n\n"
     "wait4(2), retried on EINTR: (pid, status), plus struct rusage's 16 fields\n"
     "as a tuple with with_rusage (None for a CLONE_THREAD child of ours, which\n"
     "it joins: (0, 0) while it runs under WNOHANG).  options may hold\n"
     "__WALL/__WCLONE."},
    {"process_single_threaded", process_single_threaded, METH_NOARGS,
     "process_single_threaded($module)\n--\n\n"
     "True if glibc knows this process never created a thread."},
    {"flush_std_streams", flush_std_streams_, METH_NOARGS,
     "flush_std_streams($module)\n--\n\n"
     "Flush sys.stdout and sys.stderr (either may be None); an Exception from\n"
     "a flush is ignored, any other propagates."},
    {"stack_room", stack_room, METH_NOARGS,
     "stack_room($module)\n--\n\n"
     "Bytes left below the stack pointer on the calling thread's stack."},
    {"stack_pointer", stack_pointer, METH_NOARGS,
     "stack_pointer($module)\n--\n\n"
     "An address on the calling task's C stack (where a child runs)."},
    {"claim_guard", claim_guard, METH_NOARGS,
     "claim_guard($module)\n--\n\n"
     "True the first time in a thread: create the guard that calls drop_spare."},
    {"drop_spare", drop_spare, METH_NOARGS,
     "drop_spare($module)\n--\n\n"
     "Delete the calling thread's idle child thread state (at thread exit)."},
    {"forget_spare", forget_spare, METH_NOARGS,
     "forget_spare($module)\n--\n\n"
     "Forget it without deleting it (in a fork child, where CPython did)."},
    {"frame_layout", frame_layout, METH_NOARGS,
     "frame_layout($module)\n--\n\n"
     "Offsets assumed for _PyInterpreterFrame (3.11+), or None."},
    {"tid_fix_available", tid_fix_available, METH_NOARGS,
     "tid_fix_available($module)\n--\n\n"
     "True if raw clones can set the child's TID in its thread descriptor."},
    {NULL, NULL, 0, NULL},
};

static int
clone_exec(PyObject *module)
{
    int major = 0, minor = 0;
    if (sscanf(gnu_get_libc_version(), "%d.%d", &major, &minor) != 2
        || major < 2 || (major == 2 && minor < 25)) {
        PyErr_Format(PyExc_ImportError,
                     "pyclone needs glibc 2.25 or newer (this is %s): older "
                     "versions cache the pid, so clone children see their "
                     "parent's pid", gnu_get_libc_version());
        return -1;
    }
    tstate_init();
    host_init();
    cstack_init();      /* before CPYTHON_MIN_STACK below */
    (void)rawclone_tid_slot();  /* resolve now, not in a child */
    if (flush_std_streams_init() < 0
        || sem_type_add(module) < 0
        || PyModule_AddIntConstant(module, "START_FORK", START_FORK) < 0
        || PyModule_AddIntConstant(module, "START_FORK_IF_SINGLE", START_FORK_IF_SINGLE) < 0
        || PyModule_AddIntConstant(module, "START_BORROWED", START_BORROWED) < 0
        || PyModule_AddIntConstant(module, "START_THREAD", START_THREAD) < 0
        || PyModule_AddIntConstant(module, "FORK_RAW", FORK_RAW) < 0
        || PyModule_AddIntConstant(module, "FORK_LIBC", FORK_LIBC) < 0
        || PyModule_AddIntConstant(module, "FORK_LIBC_INTERMEDIATE", FORK_LIBC_INTERMEDIATE) < 0
        || PyModule_AddIntConstant(module, "PAGE_SIZE", getpagesize()) < 0
        || PyModule_AddIntConstant(module, "HAVE_VM_MODES", PYCLONE_HAVE_VM_MODES) < 0
        || PyModule_AddIntConstant(module, "HAVE_CLONE3_VM", RAWCLONE_HAVE_CLONE3_VM) < 0
        || PyModule_AddIntConstant(module, "FRAMES_KNOWN", frames_known()) < 0
        || PyModule_AddIntConstant(module, "NEWEST_TESTED_HEX", PYCLONE_NEWEST_TESTED_HEX) < 0
        || PyModule_AddStringConstant(module, "VERSION", PYCLONE_VERSION) < 0
        || PyModule_AddIntConstant(module, "MAX_SET_TID", MAX_SET_TID) < 0
        || PyModule_AddIntConstant(module, "CPYTHON_MIN_STACK", (long)cstack_min_size()) < 0) {
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot clone_slots[] = {
    {Py_mod_exec, clone_exec},
#if PY_VERSION_HEX >= 0x030C0000
    /* Importable anywhere; clones are refused outside the main interpreter. */
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef clone_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "pyclone._clone",
    .m_doc = "C core of pyclone (an implementation detail; use the pyclone package).",
    .m_size = 0,
    .m_methods = clone_methods,
    .m_slots = clone_slots,
};

PyMODINIT_FUNC
PyInit__clone(void)
{
    return PyModuleDef_Init(&clone_module);
}
