"""Child: a clone child as a handle shaped like multiprocessing.Process,
and run(), which starts one, joins it and returns what it returned."""
from __future__ import annotations

import _thread
import atexit
import itertools
import os
import resource
import select
import sys
import weakref
# The C half of the signal module (signal.py's enums need enum, which would
# cost more than the rest of this module).
from _signal import SIG_DFL, SIGCHLD, SIGKILL, SIGTERM, pidfd_send_signal
from _signal import signal as set_handler

from . import _clone, _core, _exit, _rules
from ._cgroup import check_cgroup, open_cgroup
from ._rules import F

TYPE_CHECKING = False      # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import (Any, Callable, Dict, FrozenSet, Iterable, List, Mapping, Optional,
                        Sequence, Tuple)

    from ._cgroup import CgroupSpec

    IdMap = Sequence[Tuple[int, int, int]]

_CAP_SETGID = 6


class ChildError(Exception):
    """The exception of a child that does not share memory with its parent
    (or of one that died by a signal): only its description crosses over.
    ``str()`` is the child's traceback text."""

    def __init__(self, pid: int, exc_type: str, traceback: str):
        super().__init__(pid, exc_type, traceback)
        self.pid = pid
        self.exc_type = exc_type
        self.traceback = traceback

    def __str__(self):
        return f"in child {self.pid}: {self.traceback.rstrip()}"


_names = itertools.count(1)
#: (pid, is_thread, fds) of children whose Child was collected while they
#: ran: reaped at the next start() and at exit.
_orphans: List[Tuple[int, List[int]]] = []
_orphans_lock = _thread.allocate_lock()


_pidfd_probe: List[bool] = []


def _pidfds_work():
    """Whether this process can have pidfds (probed once, on ourselves)."""
    if not _pidfd_probe:
        try:
            os.close(os.pidfd_open(os.getpid()))
            _pidfd_probe.append(True)
        except (OSError, AttributeError):     # ENOSYS, EPERM; no os.pidfd_open
            _pidfd_probe.append(False)
    return _pidfd_probe[0]


def _reap_orphans(block=False):
    with _orphans_lock:
        pending = list(_orphans)
        _orphans.clear()
    for pid, fds in pending:
        try:
            done = _core.waitpid(pid, _core.WALL | (0 if block else os.WNOHANG))[0] != 0
        except ChildProcessError:
            done = True
        if done:
            _close_all(fds)
        else:
            with _orphans_lock:
                _orphans.append((pid, fds))


# Registered before any Child exists, so it runs after weakref.finalize's own
# exit hook (atexit is last-in, first-out), which hands running children of
# uncollected Child objects to _orphans.  Like multiprocessing's non-daemon
# processes, they are waited for.
atexit.register(_reap_orphans, True)


def _abandon(state):
    """A Child was collected (or the interpreter is exiting) unjoined."""
    pid, fds, reaped = state["pid"], state["fds"], state["reaped"]
    if reaped or pid is None:
        _close_all(fds)
        return
    with _orphans_lock:
        _orphans.append((pid, fds))
    _reap_orphans()


def _close_all(fds):
    while fds:
        fd = fds.pop()
        try:
            os.close(fd)
        except OSError:
            pass


def _check_id_map(id_map, what):
    if id_map is None:
        return None
    try:
        rows = [tuple(row) for row in id_map]
    except TypeError:
        raise TypeError(f"{what} must be a list of (inside, outside, count) tuples") from None
    if not rows:
        raise ValueError(f"{what} is empty: give at least one (inside, outside, count)")
    for row in rows:
        if len(row) != 3:
            raise ValueError(f"{what} row {row!r} must be (inside, outside, count)")
        inside, outside, count = (_rules.check_int(v, what + " value") for v in row)
        if inside < 0 or outside < 0 or count < 1 or inside + count > 1 << 32:
            raise ValueError(f"{what} row {row!r}: ids are 0..2**32-1 and count at least 1")
    return "".join(f"{a} {b} {c}\n" for a, b, c in rows).encode()


def _has_capability(bit):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> bit & 1)
    except (OSError, ValueError):
        pass
    return False


def _write_proc(pid, name, data):
    fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data)      # the kernel wants the whole map in one write
    finally:
        os.close(fd)


def _write_id_maps(pid, uid_map, gid_map):
    if gid_map is not None and not _has_capability(_CAP_SETGID):
        # Without CAP_SETGID in the parent namespace the kernel accepts a
        # gid_map only once setgroups(2) is denied in the child's namespace.
        _write_proc(pid, "setgroups", b"deny")
    if uid_map is not None:
        _write_proc(pid, "uid_map", uid_map)
    if gid_map is not None:
        _write_proc(pid, "gid_map", gid_map)


def _write_all_at(fd, data):
    view = memoryview(data)
    offset = 0
    while offset < len(view):
        offset += os.pwrite(fd, view[offset:], offset)


def _read_all(fd):
    size = os.fstat(fd).st_size
    chunks, offset = [], 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


class Child:
    """A callable run in a clone child, handled like ``multiprocessing.Process``.

    ``flags`` is clone()'s word: ``CLONE_*`` bits ORed with the exit
    signal.  ``target(*args, **kwargs)`` runs in the child (or override
    :meth:`run`); its return value becomes :attr:`result`, its exception
    :attr:`exception`.  See the README for the per-mode details.
    """

    def __init__(self, target: Optional[Callable[..., Any]] = None, args: Iterable[Any] = (),
                 kwargs: Optional[Mapping[str, Any]] = None, *, flags: int = SIGCHLD,
                 stack_size: Optional[int] = None, name: Optional[str] = None,
                 pidfd: bool = True, cgroup: Optional[CgroupSpec] = None,
                 uid_map: Optional[IdMap] = None, gid_map: Optional[IdMap] = None,
                 pdeathsig: Optional[int] = None, result_channel: bool = True):
        if target is not None:
            _rules.check_callable(target)
        self._target = target
        self._args, self._kwargs = _rules.check_call_args(args, kwargs)
        bits, exit_signal = _rules.split_legacy_flags(flags)
        _rules.check_legacy_exit_signal(exit_signal)
        if bits & F.CLONE_PIDFD:
            pidfd, bits = True, bits & ~F.CLONE_PIDFD
        if bits & F.CLONE_INTO_CGROUP:
            raise ValueError("CLONE_INTO_CGROUP needs the cgroup: pass cgroup=PATH_OR_FD "
                             "(a cgroup v2 directory) instead of the flag")
        self._mode = _rules.check_flag_bits(bits, "clone")
        if bits & F.CLONE_PARENT:
            raise ValueError("a Child cannot use CLONE_PARENT: the child would be your "
                             "sibling, which only your parent can reap and join; use "
                             "pyclone.clone() or clone3() for that")
        self._bits, self._exit_signal = bits, exit_signal
        self._stack_size = _rules.check_stack_size(stack_size, self._mode)
        self.name = name if name is not None else f"Child-{next(_names)}"
        # Where pidfds cannot be had (kernels before 5.3, seccomp filters),
        # the pipe sentinel serves instead: pidfd stays None.
        self._want_pidfd = bool(pidfd) and not bits & F.CLONE_THREAD and _pidfds_work()
        self._cgroup = check_cgroup(cgroup)
        if self._cgroup is not None:
            _rules.check_flag_bits(bits | F.CLONE_INTO_CGROUP, "clone3")
        self._uid_map = _check_id_map(uid_map, "uid_map")
        self._gid_map = _check_id_map(gid_map, "gid_map")
        if (self._uid_map or self._gid_map) is not None:
            if not bits & F.CLONE_NEWUSER:
                raise ValueError("uid_map/gid_map apply to a new user namespace: "
                                 "add CLONE_NEWUSER to flags")
            if bits & F.CLONE_VFORK:
                raise ValueError("uid_map/gid_map cannot be written for a CLONE_VFORK "
                                 "child: its parent is suspended until the child ends; "
                                 "drop CLONE_VFORK")
        if pdeathsig is not None:
            pdeathsig = _rules.check_int(pdeathsig, "pdeathsig")
            if not 1 <= pdeathsig <= 64:
                raise ValueError(f"pdeathsig {pdeathsig} is not a signal: use 1..64")
            if bits & F.CLONE_THREAD:
                raise ValueError("pdeathsig does not apply to a CLONE_THREAD child: it "
                                 "ends with its process anyway")
        self._pdeathsig = pdeathsig
        self._vm = bool(bits & F.CLONE_VM)
        self._thread = bool(bits & F.CLONE_THREAD)
        self._result_channel = bool(result_channel)
        self._pid: Optional[int] = None
        self._pidfd: Optional[int] = None
        self._exitcode: Optional[int] = None
        self._result: Any = None
        self._exception: Optional[BaseException] = None
        self._rusage: Optional[resource.struct_rusage] = None
        self._reap_lock = _thread.allocate_lock()
        # Parent-side fds closed at join: [result memfd, go pipe r/w,
        # done pipe r/w, parent pidfd] as used.
        self._outbox: Optional[int] = None
        self._go: Optional[Tuple[int, int]] = None
        self._done: Optional[Tuple[int, int]] = None
        self._parent_pidfd: Optional[int] = None
        # (st_dev, st_ino) of each fd the child writes to while its target
        # runs, so that it never writes into a file the target opened under
        # a number it closed.
        self._identity: Dict[int, Tuple[int, int]] = {}
        self._cgroup_fd: Optional[int] = None
        self._state: Dict[str, Any] = {"pid": None, "fds": [], "reaped": False}

    # -- what runs in the child -------------------------------------------

    def run(self) -> Any:
        """The child's work: calls the target; its value becomes ``result``."""
        if self._target is not None:
            return self._target(*self._args, **self._kwargs)
        return None

    def _bootstrap(self):
        status = 1
        try:
            try:
                self._prepare_in_child()
                value = self.run()
            except SystemExit as exc:
                status = _exit.system_exit_status(exc)
            except _exit.Terminated:
                raise                       # on_exception: ends as killed by SIGTERM
            except BaseException as exc:
                print(f"{self.name} (pid {os.getpid()}):", file=sys.stderr)
                import traceback    # only a failing child pays for it
                traceback.print_exception(type(exc), exc, exc.__traceback__)
                self._report(exc=exc)
                status = 1
            else:
                status = 0 if self._report(value=value) else 1
        finally:
            if self._done is not None and self._still_ours(
                    self._done[1], "end-of-child pipe",
                    "learns that the child ended only when it exits"):
                os.write(self._done[1], b"x")
        return status

    def _still_ours(self, fd, what, consequence):
        """In the child: whether ``fd`` is still the file pyclone gave it (the
        target may have closed it, and opened something else under its number)."""
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) == self._identity[fd]:
                return True
        except OSError:
            pass
        print(f"pyclone: {self.name} (pid {os.getpid()}): the target closed fd {fd}, "
              f"pyclone's {what}, so the parent {consequence}. Keep "
              "Child.own_fds open in a loop that closes fds, or pass "
              "result_channel=False to start without a result channel.", file=sys.stderr)
        return False

    def _prepare_in_child(self):
        # Without CLONE_FILES the fd table is the child's own copy: what is
        # used up here is closed, so that the target starts with only
        # own_fds.  (With it, these are the parent's fds: left alone.)
        private = not self._bits & F.CLONE_FILES
        if private:
            if self._done is not None:
                os.close(self._done[0])         # the parent's end
            if self._cgroup_fd is not None:
                os.close(self._cgroup_fd)       # open in the parent during the clone
        if self._go is not None:
            # The parent writes our id maps, then says go (EOF: it failed).
            if os.read(self._go[0], 1) != b"g":
                os._exit(127)
            if private:
                os.close(self._go[0])
                os.close(self._go[1])
        if self._pdeathsig is not None:
            _clone.set_pdeathsig(self._pdeathsig)
            # The parent may have died before the line above: then nothing
            # will send the signal, so act as if it had arrived.
            poller = select.poll()
            poller.register(self._parent_pidfd, select.POLLIN)
            if poller.poll(0):
                try:
                    set_handler(self._pdeathsig, SIG_DFL)
                except (ValueError, OSError):   # SIGKILL/SIGSTOP, or not the main thread
                    pass
                os.kill(os.getpid(), self._pdeathsig)
                os._exit(128 + self._pdeathsig)     # an init ignores it
            if private:
                os.close(self._parent_pidfd)

    def _report(self, value=None, exc=None):
        """Hands the outcome to the parent; False if the value cannot be."""
        if not self._result_channel:
            return True
        if self._vm:
            self._result, self._exception = value, exc
            return True
        import pickle       # loaded by start(): no import in the child
        if exc is None:
            try:
                data = pickle.dumps(("ok", value), pickle.HIGHEST_PROTOCOL)
            except Exception as problem:
                print(f"{self.name}: the result cannot be pickled: {problem!r}",
                      file=sys.stderr)
                exc = problem
        if exc is not None:
            import traceback
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            data = pickle.dumps(("exc", type(exc).__qualname__, text))
        if not self._still_ours(self._outbox, "result channel",
                                "cannot have the result: the child exits with status 1"):
            return False
        _write_all_at(self._outbox, data)
        return exc is None

    # -- the parent's side ------------------------------------------------

    def start(self) -> "Child":
        """Starts the child; returns self (``with Child(f).start() as c:``)."""
        if self._pid is not None:
            raise RuntimeError("a Child can only be started once")
        if self._exit_signal and self._exit_signal != SIGCHLD:
            _rules.check_exit_signal_handled(self._exit_signal, self._bits)
        sys.audit("pyclone.clone", self._bits | self._exit_signal, self._mode)
        _reap_orphans()
        fds = self._state["fds"]
        try:
            if not self._vm and self._result_channel:
                import pickle  # noqa: F401 - here, so that no child has to import it
                self._outbox = os.memfd_create("pyclone-child-result", os.MFD_CLOEXEC)
                fds.append(self._outbox)
                self._remember(self._outbox)
            if self._uid_map is not None or self._gid_map is not None:
                self._go = os.pipe()
                fds.extend(self._go)
            if self._thread or not self._want_pidfd:
                self._done = os.pipe()
                fds.extend(self._done)
                self._remember(self._done[1])
            if self._pdeathsig is not None:
                parent = os.getppid() if self._bits & F.CLONE_PARENT else os.getpid()
                self._parent_pidfd = os.pidfd_open(parent)
                fds.append(self._parent_pidfd)
            cgroup_fd, opened = (-1, False)
            if self._cgroup is not None:
                cgroup_fd, opened = open_cgroup(self._cgroup)
                self._cgroup_fd = cgroup_fd if opened else None
            try:
                pid, pidfd = _core.start(self._mode, self._bits, self._exit_signal,
                                         self._stack_size,
                                         (self._bootstrap, (), {}, _exit.on_return,
                                          _exit.on_exception),
                                         extras=(self._want_pidfd, cgroup_fd, ()))
            finally:
                if opened:
                    os.close(cgroup_fd)
                    self._cgroup_fd = None
        except BaseException:
            _close_all(fds)
            raise
        self._pid = self._state["pid"] = pid
        if pidfd >= 0:
            self._pidfd = pidfd
            fds.append(pidfd)
        weakref.finalize(self, _abandon, self._state)
        if self._go is not None:
            try:
                _write_id_maps(pid, self._uid_map, self._gid_map)
                os.write(self._go[1], b"g")
            except BaseException:
                self._abort()
                raise
        if self._done is not None and not self._bits & F.CLONE_FILES:
            # The child holds its own copy of the write end: when it dies
            # the pipe reads EOF even if it could not write.
            fds.remove(self._done[1])
            os.close(self._done[1])
        return self

    def _remember(self, fd):
        st = os.fstat(fd)
        self._identity[fd] = (st.st_dev, st.st_ino)

    def _abort(self):
        try:
            self.kill()
        finally:
            self.join()

    @property
    def pid(self) -> Optional[int]:
        """The child's pid (its tid under CLONE_THREAD); None before start()."""
        return self._pid

    @property
    def pidfd(self) -> Optional[int]:
        """The child's pidfd (CLONE_PIDFD), owned by this object until close()."""
        return self._pidfd

    @property
    def sentinel(self) -> int:
        """An fd that becomes readable when the child has ended (its pidfd, or
        for CLONE_THREAD children and pidfd=False a pipe the child writes as
        it finishes)."""
        self._check_started()
        if self._pidfd is not None:
            return self._pidfd
        assert self._done is not None
        return self._done[0]

    @property
    def own_fds(self) -> FrozenSet[int]:
        """The fds of pyclone's that are open in the child while its target
        runs: the result channel (a memfd; not under CLONE_VM or with
        ``result_channel=False``) and, where the sentinel is a pipe, the pipe's
        write end.  A target that closes every fd not on a keep-list must keep
        these.  Empty before :meth:`start`; in the child, read it from the
        Child object (``self`` in an overridden :meth:`run`, or the object a
        target closes over)."""
        return frozenset(self._identity)

    @property
    def exitcode(self) -> Optional[int]:
        """None while running; the exit status; -N if killed by signal N."""
        if self._pid is not None and self._exitcode is None:
            self._reap(block=False)
        return self._exitcode

    @property
    def result(self) -> Any:
        """What run() returned (after join)."""
        return self._result

    @property
    def rusage(self) -> Optional["resource.struct_rusage"]:
        """The reaped child's resource usage (``wait4``): None while it runs,
        for a CLONE_THREAD child (its usage is this process's), and when
        someone else reaped it."""
        return self._rusage

    @property
    def exception(self) -> Optional[BaseException]:
        """The child's exception (after join): the object itself under
        CLONE_VM, else a ChildError with the remote traceback text."""
        return self._exception

    def is_alive(self) -> bool:
        if self._pid is None:
            return False
        return self.exitcode is None

    def join(self, timeout: Optional[float] = None) -> None:
        """Waits for the child to end (at most ``timeout`` seconds), reaps it
        and collects its result."""
        self._check_started()
        if self._exitcode is not None:
            return
        if timeout is not None:
            ready = select.select([self.sentinel], [], [], max(0.0, timeout))[0]
            if not ready:
                self._reap(block=False)
                return
        self._reap(block=True)

    async def wait_async(self) -> int:
        """Waits in asyncio, driven by the sentinel (the pidfd): works for
        every exit signal.  Returns the exit code."""
        self._check_started()
        if self._exitcode is None:
            import asyncio      # imported here: most users of pyclone never need it
            loop = asyncio.get_running_loop()
            ended = loop.create_future()
            fd = self.sentinel

            def wake():
                if not ended.done():
                    ended.set_result(None)
            loop.add_reader(fd, wake)
            try:
                await ended
            finally:
                loop.remove_reader(fd)
            self._reap(block=True)       # the child has ended: no real wait
        assert self._exitcode is not None
        return self._exitcode

    def send_signal(self, sig: int) -> None:
        """Signals the child (through its pidfd when it has one: no pid reuse
        race).  Nothing happens once it has been reaped."""
        self._check_started()
        if self._exitcode is not None:
            return
        assert self._pid is not None
        if self._pidfd is not None:
            pidfd_send_signal(self._pidfd, sig)
        elif self._thread:
            _clone.signal_thread(self._pid, sig)
        else:
            os.kill(self._pid, sig)

    def terminate(self) -> None:
        """Ends the child as SIGTERM would; safe in every mode.  A fork-mode
        child gets SIGTERM; a CLONE_VM child is ended where it holds no lock
        it shares with this interpreter (:func:`pyclone.terminate`): it then
        ends with ``exitcode == -SIGTERM``."""
        self._check_started()
        if self._exitcode is not None:
            return
        assert self._pid is not None
        if self._vm:
            _core.terminate(self._pid)
        else:
            self.send_signal(SIGTERM)

    def kill(self) -> None:
        """SIGKILL, at once.  For a CLONE_VM child this is as dangerous as
        killing a thread: if it lands while the child holds or waits for a
        lock in the memory it shares with this interpreter (the GIL's,
        malloc's), this process hangs or must abort (pyclone then says so on
        stderr).  Prefer :meth:`terminate`."""
        self.send_signal(SIGKILL)

    def close(self) -> None:
        """Releases the pidfd and pipes; the child must have been joined."""
        if self._pid is not None and self._exitcode is None:
            raise ValueError("cannot close a Child that is still running: join it first")
        self._pidfd = None
        _close_all(self._state["fds"])

    def __enter__(self) -> "Child":
        return self

    def __exit__(self, *exc_info) -> None:
        """Joins the child and releases its fds (result and exitcode stay)."""
        if self._pid is not None:
            self.join()
            self.close()

    def __repr__(self):
        if self._pid is None:
            state = "initial"
        elif self._exitcode is None:
            state = "started"
        else:
            state = f"exitcode={self._exitcode}"
        return f"<{type(self).__name__} name={self.name!r} pid={self._pid} {state}>"

    def _check_started(self):
        if self._pid is None:
            raise RuntimeError("the Child has not been started: call start() first")

    def _reap(self, block):
        with self._reap_lock:
            if self._exitcode is not None:
                return
            options = _core.WALL | (0 if block else os.WNOHANG)
            try:
                pid, status, usage = _core.wait4(self._pid, options)
            except ChildProcessError:
                # Someone else reaped it (os.waitpid(-1), a SIGCHLD handler):
                # its status is lost.  As asyncio's pidfd watcher does: warn,
                # and report 255.
                import warnings
                warnings.warn(f"{self.name}: child {self._pid} was reaped by someone else "
                              "(os.waitpid(-1, ...) or a SIGCHLD handler?); its exit status "
                              "is lost: exitcode is 255", RuntimeWarning, stacklevel=4)
                pid, status, usage = self._pid, 255 << 8, None
            if pid == 0:
                return
            self._rusage = usage
            self._state["reaped"] = True
            self._collect(status)
            keep = {self._pidfd} if self._pidfd is not None else set()
            fds = self._state["fds"]
            _close_all([fd for fd in fds if fd not in keep])
            fds[:] = list(keep)

    def _collect(self, status):
        code = os.waitstatus_to_exitcode(status)
        if self._outbox is not None:
            data = _read_all(self._outbox)
            if data:
                import pickle
                outcome = pickle.loads(data)
                if outcome[0] == "ok":
                    self._result = outcome[1]
                else:
                    self._exception = ChildError(self._pid, outcome[1], outcome[2])
        self._exitcode = code


def run(target: Callable[..., Any], *args: Any, flags: int = SIGCHLD,
        **kwargs: Any) -> Any:
    """Runs ``target(*args, **kwargs)`` in a clone child with ``flags``,
    waits for it and returns its result, or raises its exception (a
    ChildError when it died by a signal or exited with a nonzero code)."""
    child = Child(target, args, kwargs, flags=flags).start()
    try:
        child.join()
    finally:
        if child.exitcode is None:
            child.kill()
            child.join()
        child.close()
    if child.exception is not None:
        raise child.exception
    code, pid = child.exitcode, child.pid
    assert code is not None and pid is not None
    if code < 0:
        import signal
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        raise ChildError(pid, name, f"killed by {name}")
    if code != 0:
        raise ChildError(pid, "SystemExit", f"exited with status {code}")
    return child.result
