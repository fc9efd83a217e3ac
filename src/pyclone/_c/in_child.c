/* in_child.c - code that runs in the child of a clone.
 *
 * Rules, by mode (every function here is named child_* and kept out of line
 * so that a backtrace shows at once that the child was running):
 *
 * Fork mode (no CLONE_VM), until PyOS_AfterFork_Child() has run: only
 * async-signal-safe calls (unshare, sigaction, close, write, a raw clone),
 * no allocation, no Python.  Failures are reported as (stage, errno)
 * through a close-on-exec pipe, then the child leaves with _exit().  That
 * rule keeps pyclone's own steps out of any lock, but it cannot make the
 * rest safe: PyOS_AfterFork_Child() allocates and takes locks, and so does
 * every bytecode after it.  After a raw clone in a process that had other
 * threads, a lock one of them held (a malloc arena, stdio) stays locked in
 * the child forever, and the child can deadlock right there - the hazard
 * for which CPython warns about os.fork() in threaded processes.  So fork
 * mode goes through glibc's fork(), which takes those locks around the
 * system call, whenever the request allows it, and warns before the raw
 * clones that remain (_core.fork_method in the Python layer).
 *
 * Thread mode (CLONE_VM, concurrent): the child runs on a host pthread's
 * TLS (host.c), lent while the host is parked with raw system calls and
 * every signal blocked, and on a stack carved below the host's stack
 * pointer.  It made no thread state of its own before the clone: the host
 * did, on this TLS, so PyGILState finds it.  It leaves by returning to
 * glibc's clone trampoline, which calls exit (never exit_group: under
 * CLONE_THREAD that would end the whole process); a clean end deletes its
 * thread state and releases the GIL first, as a finishing thread does.
 *
 * Borrowed mode (CLONE_VM|CLONE_VFORK): the child runs on the suspended
 * parent thread's TLS (errno, malloc's thread cache, CPython's current
 * thread state) and on a stack carved below the parent's stack pointer.  The
 * parent is stopped by the kernel, so nothing else touches that TLS; the
 * parent blocked every signal before the clone, so no handler can run on the
 * child before its own thread state is attached.  It must never return into
 * the parent's frames: it leaves with _exit(), which under CLONE_VM without
 * CLONE_THREAD ends only this child (its own thread group).  No os.set*id:
 * glibc broadcasts those to the parent's threads (documented in the README).
 */
#define _GNU_SOURCE
#include "in_child.h"
#include "tstate.h"
#include "host.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "raw_clone.h"

/* One failure path: report (stage, errno) to the parent and leave.  write()
 * and _exit() are async-signal-safe; the record is smaller than PIPE_BUF, so
 * the write is atomic. */
static PYCLONE_NORETURN void PYCLONE_NOINLINE
child_fail(int fd, int stage, int err)
{
    struct child_report rep = {stage, err, 0};
    if (fd >= 0) {
        ssize_t unused = write(fd, &rep, sizeof rep);
        (void)unused;
    }
    _exit(127);
}

/* CLONE_CLEAR_SIGHAND by hand, for children that fork() or the legacy clone
 * made: handled signals go back to SIG_DFL, ignored ones stay ignored (the
 * kernel's rule).  sigaction() is async-signal-safe; signals are blocked. */
static void PYCLONE_NOINLINE
child_reset_handlers(void)
{
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        if (sigaction(sig, NULL, &sa) != 0) {
            continue;           /* SIGKILL/SIGSTOP or glibc-internal */
        }
        if (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN) {
            continue;
        }
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        (void)sigaction(sig, &sa, NULL);
    }
}

/* Made at the main interpreter's import, kept for good: no allocation per
 * flush (PySys_GetObject makes a str of the name each time), so no more
 * pages written.  (Clones are refused in other interpreters; there a flush
 * takes the slow way.)  Every page a fork child writes is a copy, and
 * before 3.12 a reference count is a write, so the streams are found in
 * sys's dict (an attribute lookup adds a reference to the name), and an
 * io.TextIOWrapper's flush is called through the method itself (a method
 * lookup adds one to it): 5 faults fewer in the parent, 3-4 in the child
 * (3.11). */
static PyObject *sys_module, *sys_dict, *flush_name, *stream_names[2];
static PyTypeObject *textio_type;
static PyObject *textio_flush;

int
flush_std_streams_init(void)
{
    if (sys_module != NULL || PyInterpreterState_Get() != PyInterpreterState_Main()) {
        return 0;
    }
    PyObject *io = NULL, *textio = NULL;
    if ((flush_name = PyUnicode_InternFromString("flush")) == NULL
        || (stream_names[0] = PyUnicode_InternFromString("stdout")) == NULL
        || (stream_names[1] = PyUnicode_InternFromString("stderr")) == NULL
        || (io = PyImport_ImportModule("_io")) == NULL
        || (textio = PyObject_GetAttrString(io, "TextIOWrapper")) == NULL
        || (textio_flush = PyObject_GetAttr(textio, flush_name)) == NULL
        || (sys_module = PyImport_ImportModule("sys")) == NULL) {
        Py_XDECREF(io);
        Py_XDECREF(textio);
        return -1;
    }
    Py_DECREF(io);
    textio_type = (PyTypeObject *)textio;       /* kept, as textio_flush */
    sys_dict = PyModule_GetDict(sys_module);    /* borrowed: sys lives on */
    return 0;
}

/* stream.flush(), as the attribute lookup would find it.  The type of an
 * exact io.TextIOWrapper is immutable, so only the instance's own __dict__
 * could hold another flush. */
static PyObject *
call_flush(PyObject *stream)
{
    if (Py_IS_TYPE(stream, textio_type) && textio_type->tp_dictoffset > 0) {
        PyObject *own = *(PyObject **)((char *)stream + textio_type->tp_dictoffset);
        int shadowed = own == NULL ? 0 : PyDict_Check(own) ? PyDict_Contains(own, flush_name) : 1;
        if (shadowed < 0) {
            return NULL;
        }
        if (!shadowed) {
            return PyObject_Vectorcall(textio_flush, &stream, 1, NULL);
        }
    }
    return PyObject_CallMethodNoArgs(stream, flush_name);
}

int PYCLONE_NOINLINE
flush_std_streams(void)
{
    static const char *const names[] = {"stdout", "stderr"};
    int fast = sys_module != NULL && PyInterpreterState_Get() == PyInterpreterState_Main();
    for (size_t i = 0; i < 2; i++) {
        /* A strong reference: a flush may replace sys.stdout. */
        PyObject *stream;
        if (fast) {
            stream = PyDict_GetItemWithError(sys_dict, stream_names[i]);
            if (stream == NULL) {
                if (PyErr_Occurred()) {
                    return -1;
                }
                continue;               /* deleted: nothing to flush */
            }
            Py_INCREF(stream);
        }
        else {
            stream = PySys_GetObject(names[i]);     /* borrowed; NULL if deleted */
            if (stream == NULL) {
                continue;
            }
            Py_INCREF(stream);
        }
        if (stream == Py_None) {
            Py_DECREF(stream);
            continue;
        }
        PyObject *r = fast ? call_flush(stream) : PyObject_CallMethod(stream, "flush", NULL);
        Py_DECREF(stream);
        if (r != NULL) {
            Py_DECREF(r);
        }
        else if (PyErr_ExceptionMatches(PyExc_Exception)) {
            PyErr_Clear();
        }
        else {
            return -1;
        }
    }
    return 0;
}

/* pyclone._exit's rules, kept for good (registered at its import). */
static PyObject *rule_on_return, *rule_on_exception;

int
child_set_exit_rules(PyObject *on_return, PyObject *on_exception)
{
    if (!PyCallable_Check(on_return) || !PyCallable_Check(on_exception)) {
        PyErr_SetString(PyExc_TypeError, "the exit rules must be callables");
        return -1;
    }
    if (PyInterpreterState_Get() != PyInterpreterState_Main()) {
        return 0;       /* clones are refused there: keep the main interpreter's */
    }
    Py_INCREF(on_return);
    Py_INCREF(on_exception);
    Py_XSETREF(rule_on_return, on_return);
    Py_XSETREF(rule_on_exception, on_exception);
    return 0;
}

int PYCLONE_NOINLINE
child_call_target(const struct call_plan *call)
{
    /* fn, args and kwargs are kept alive by the parent, so borrowed here:
     * if this child execs or _exits inside fn, nothing of ours is left
     * referenced from its abandoned C stack.  The exit rules
     * on_return(result) / on_exception(exc) are pyclone's Python helpers
     * (None and an exact int, the common results, are handled here as
     * on_return would): they decode SystemExit themselves (PyErr_Print
     * would call exit() and finalise an interpreter the child may share),
     * flush stdio and return the exit status 0..255.  They are not in the
     * call plan: one reference fewer to write per child, which in fork
     * mode's parent is one copy-on-write fault fewer. */
    PyObject *fn = call->fn;
    if (rule_on_return == NULL) {
        return 1;                   /* pyclone._exit never imported: cannot happen */
    }
    PyObject *res = PyObject_Call(fn, call->args, call->kwargs);
    PyObject *status;
    if (res == Py_None || (res != NULL && PyLong_CheckExact(res))) {
        /* The common ends, without calling back into Python: what
         * on_return does (flush stdio; an int 0..255 is the status, any
         * other value 0).  An exact int cannot run code while read. */
        int overflow;
        long value = res == Py_None ? 0 : PyLong_AsLongAndOverflow(res, &overflow);
        Py_DECREF(res);
        if (flush_std_streams() == 0) {
            return value >= 0 && value <= 255 ? (int)value : 0;
        }
        PyErr_WriteUnraisable(fn);
        return 1;
    }
    if (res != NULL) {
        status = PyObject_CallFunctionObjArgs(rule_on_return, res, NULL);
        Py_DECREF(res);
    }
    else {
        PyObject *exc = compat_take_exception();
        status = PyObject_CallFunctionObjArgs(rule_on_exception,
                                              exc ? exc : Py_None, NULL);
        Py_XDECREF(exc);
    }
    if (status == NULL) {
        /* Only a signal's exception at the wrong moment gets here.
         * WriteUnraisable never exits. */
        PyErr_WriteUnraisable(fn);
        return 1;
    }
    long code = PyLong_Check(status) ? PyLong_AsLong(status) : 1;
    Py_DECREF(status);
    if (code == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        code = 1;
    }
    if (code < 0 && code >= -64) {
        return (int)code;           /* end as killed by signal -code */
    }
    return (int)(code & 0xff);
}

PYCLONE_NORETURN void PYCLONE_NOINLINE
child_die_by_signal(int sig, int shared_sighand)
{
    /* Reached with no Python state held (or, in borrowed mode, with the GIL
     * that the parent takes over, as after _exit).  sigaction, sigprocmask
     * and tgkill are async-signal-safe system calls. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    if (!shared_sighand) {
        sa.sa_handler = SIG_DFL;            /* our own table: nobody else's */
        (void)sigaction(sig, &sa, NULL);
    }
    else if (sigaction(sig, NULL, &sa) != 0 || sa.sa_handler != SIG_DFL) {
        sig = SIGKILL;                      /* the parent's handler is not ours to change */
    }
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    (void)sigprocmask(SIG_UNBLOCK, &one, NULL);
    (void)syscall(SYS_tgkill, (pid_t)syscall(SYS_getpid), (pid_t)syscall(SYS_gettid), sig);
    _exit(128 + sig);                       /* not reached */
}

/* A child process that ends normally first joins its own thread-mode
 * children and retires its own host threads (host.h): they are threads of
 * this process, and would outlive it otherwise. */
static void PYCLONE_NOINLINE
child_leave_process(int vm_child)
{
    /* A CLONE_VM child process is never its memory's home process: it owns
     * something only if some process but the home one does (no getpid). */
    if (host_none() || (vm_child ? host_owns_nothing_but_home()
                                 : host_owns_nothing((pid_t)syscall(SYS_getpid)))) {
        /* Thread mode never used, or only by the home process: nothing of
         * ours to wait for, and no GIL hand-off (with many children ending
         * at once, each one is another turn at the GIL). */
        return;
    }
    Py_BEGIN_ALLOW_THREADS
    host_leave_process();
    Py_END_ALLOW_THREADS
}

/* Leaves the child holding whatever it holds: fork mode owns a private
 * interpreter, borrowed mode hands its thread state and the GIL to the
 * parent (tstate.c).  No atexit handlers, no finalisation. */
static PYCLONE_NORETURN void PYCLONE_NOINLINE
child_exit(int code)
{
    _exit(code);
}

PYCLONE_NORETURN void PYCLONE_NOINLINE
child_after_fork(const struct fork_child_plan *plan)
{
    int fd = plan->report_fd;

    if (plan->method != FORK_RAW && plan->unshare_flags != 0) {
        /* The child of glibc's fork() is single-threaded, as unshare()
         * requires for CLONE_NEWUSER. */
        if (unshare((int)plan->unshare_flags) != 0) {
            child_fail(fd, STAGE_UNSHARE, errno);
        }
    }
    if (plan->method == FORK_LIBC_INTERMEDIATE) {
        /* A new PID (or time) namespace takes effect for children made
         * after unshare(), so this process makes the real child and leaves.
         * We are single-threaded, so a raw clone is safe here; CLONE_PARENT
         * makes the child the caller's, and with it the kernel reuses our
         * exit signal (SIGCHLD).  clone3 refuses an exit signal with
         * CLONE_PARENT, hence 0. */
        struct clone_request req = {CLONE_PARENT, 0, -1, NULL, 0, NULL};
        int used_clone3;
        pid_t pid = rawclone_fork_like(&req, &used_clone3);
        if (pid < 0) {
            child_fail(fd, STAGE_CLONE, errno);
        }
        if (pid > 0) {
            struct child_report rep = {STAGE_OK, 0, (int32_t)pid};
            ssize_t unused = write(fd, &rep, sizeof rep);
            (void)unused;
            _exit(0);
        }
        /* The real child goes on. */
    }
    if (fd >= 0) {
        (void)close(fd);        /* EOF tells the parent setup succeeded */
    }
    if (plan->clear_sighand) {
        child_reset_handlers();
    }

    /* From here on this is a process of its own with one thread: make the
     * interpreter consistent before any bytecode runs (os.fork's order).
     * After glibc's fork() malloc and stdio are consistent; after a raw
     * clone in a threaded process they may not be (see the top of file). */
    PyOS_AfterFork_Child();
    (void)pthread_sigmask(SIG_SETMASK, plan->mask, NULL);
    int status = child_call_target(&plan->call);
    child_leave_process(0);
    if (status < 0) {
        child_die_by_signal(-status, 0);    /* a process of its own */
    }
    child_exit(status);
}

int PYCLONE_NOINLINE
child_borrowed_main(void *arg)
{
    struct borrowed_plan *plan = arg;

    /* First, so that terminate() finds us by pid, unless the kernel stored
     * it (CLONE_PARENT_SETTID).  A raw system call: no errno, which is the
     * suspended parent's. */
    if (plan->tid == 0) {
        plan->tid = (pid_t)syscall(SYS_gettid);
    }
    if (plan->clear_sighand) {
        child_reset_handlers();
    }
    if (plan->blocked_start) {
        (void)pthread_sigmask(SIG_SETMASK, &plan->mask, NULL);
    }
    /* Our own thread state: the parent's frames stay untouched on its own.
     * This waits for the GIL like any thread (the parent released it). */
    PyEval_RestoreThread(plan->tstate);
    tstate_bind_gilstate(plan->tstate);
    vm_running(&plan->vm, plan->tstate);
    int status = child_call_target(&plan->call);
    vm_done(&plan->vm);
    child_leave_process(1);
    plan->clean = 1;        /* shared memory: the parent may reuse our state */
    if (status < 0) {
        /* Holding the GIL, as _exit would: the parent takes it over. */
        child_die_by_signal(-status, (plan->flags & CLONE_SIGHAND) != 0);
    }
    child_exit(status);
}

int PYCLONE_NOINLINE
child_thread_main(void *arg)
{
    struct thread_job *job = arg;

    if (job->clear_sighand) {
        child_reset_handlers();     /* our own table: no CLONE_SIGHAND here */
    }
    if (job->blocked_start) {
        (void)pthread_sigmask(SIG_SETMASK, &job->mask, NULL);
    }
    PyEval_RestoreThread(job->tstate);
    vm_running(&job->vm, job->tstate);
    int status = child_call_target(&job->call);
    vm_done(&job->vm);
    if (!(job->flags & CLONE_THREAD)) {
        child_leave_process(1);     /* our own process: retire its hosts */
    }
    job->status = status;
    call_plan_clear(&job->call);
    if (tstate_reusable(job->tstate)) {
        /* Leave our thread state, reset, for the host's next child: its
         * data stack is already mapped.  Always, even when the pool is
         * full: deleting it here would unmap that data stack holding the
         * GIL, and while other child processes exit (each one's exit walks
         * every mapping of the shared memory, which is slow with thousands
         * of host stacks) that munmap waits, GIL held, for the mm lock.
         * The host parks with it and deletes it once the pool is quiet. */
        tstate_reset_for_reuse(job->tstate);
        job->keep_tstate = 1;
        job->clean = 1;
        (void)PyEval_SaveThread();  /* releases the GIL */
    }
    else {
        PyThreadState_Clear(job->tstate);
        job->clean = 1;             /* shared memory: nothing left for the host */
        PyThreadState_DeleteCurrent();  /* and the GIL */
    }
    /* Nothing of ours is left for the host to clean up: let our exit clear
     * (and wake) the exit word instead of the tid word the host sleeps on,
     * so that the waiter which reaps us tidies up and the host sleeps on
     * (a host woken at every exit is one more context switch per child).
     * set_tid_address only changes this task's own pointer and cannot
     * fail, so errno (ours now, on the host's TLS) is untouched. */
    (void)syscall(SYS_set_tid_address, job->exit_word);
    if (status < 0 && !(job->flags & CLONE_THREAD)) {
        /* Nothing held any more: end as killed by that signal. */
        child_die_by_signal(-status, (job->flags & CLONE_SIGHAND) != 0);
    }
    return status;                  /* glibc's trampoline: exit(status) */
}
