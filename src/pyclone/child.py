"""Child: a clone child as a handle shaped like multiprocessing.Process,
and run(), which starts one, joins it and returns what it returned.

This module is the parent's side: starting, waiting, signalling, reaping.
What is checked before the start lives in _child_request, what runs in the
child in _in_child, the result channel in _result_channel.
"""
from __future__ import annotations

import _thread
import itertools
import os
import select
import weakref

from . import _clone, _core, _in_child, _result_channel
from ._child_request import ChildRequest
from ._orphans import abandon, close_all, reap_orphans
from ._result_channel import ChildError
from .flags import WALL
from ._userns import write_id_maps

TYPE_CHECKING = False      # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:          # signal's names, without signal.py's enum import at run time
    from signal import SIGCHLD, SIGKILL, SIGTERM, pidfd_send_signal
else:
    from _signal import SIGCHLD, SIGKILL, SIGTERM, pidfd_send_signal

if TYPE_CHECKING:
    import resource
    from typing import (Any, Callable, Dict, FrozenSet, Iterable, Mapping, Optional,
                        Sequence, Tuple)

    from ._cgroup import CgroupSpec

    IdMap = Sequence[Tuple[int, int, int]]

__all__ = ["Child", "ChildError", "run"]

_names = itertools.count(1)


class Child:
    """A callable run in a clone child, handled like ``multiprocessing.Process``.

    ``flags`` is clone()'s word: ``CLONE_*`` bits ORed with the exit
    signal.  ``target(*args, **kwargs)`` runs in the child (or override
    :meth:`run`); its return value becomes :attr:`result`, its exception
    :attr:`exception`.  See docs/api-child.md for the per-mode details.
    """

    def __init__(self, target: Optional[Callable[..., Any]] = None, args: Iterable[Any] = (),
                 kwargs: Optional[Mapping[str, Any]] = None, *, flags: int = SIGCHLD,
                 stack_size: Optional[int] = None, name: Optional[str] = None,
                 pidfd: bool = True, cgroup: Optional[CgroupSpec] = None,
                 uid_map: Optional[IdMap] = None, gid_map: Optional[IdMap] = None,
                 pdeathsig: Optional[int] = None, result_channel: bool = True):
        self._req = ChildRequest(target, args, kwargs, flags, stack_size, pidfd, cgroup,
                                 uid_map, gid_map, pdeathsig, result_channel)
        self.name = name if name is not None else f"Child-{next(_names)}"
        self._pid: Optional[int] = None
        self._pidfd: Optional[int] = None
        self._exitcode: Optional[int] = None
        self._result: Any = None
        self._exception: Optional[BaseException] = None
        self._rusage: Optional[resource.struct_rusage] = None
        self._reap_lock = _thread.allocate_lock()
        # The fds pyclone opens for the child, as used: the result memfd,
        # the id-map "go" pipe, the end-of-child pipe (the sentinel without
        # a pidfd), a pidfd of the parent (pdeathsig), the cgroup fd during
        # the clone.  The parent's copies are closed at the reap.
        self._outbox: Optional[int] = None
        self._go: Optional[Tuple[int, int]] = None
        self._done: Optional[Tuple[int, int]] = None
        self._parent_pidfd: Optional[int] = None
        self._cgroup_fd: Optional[int] = None
        # (st_dev, st_ino) of each fd the child writes to while its target
        # runs, so that it never writes into a file the target opened under
        # a number it closed.
        self._identity: Dict[int, Tuple[int, int]] = {}
        self._state: Dict[str, Any] = {"pid": None, "fds": [], "reaped": False}

    def run(self) -> Any:
        """The child's work: calls the target; its value becomes ``result``."""
        req = self._req
        if req.target is not None:
            return req.target(*req.args, **req.kwargs)
        return None

    def start(self) -> "Child":
        """Starts the child; returns self (``with Child(f).start() as c:``)."""
        if self._pid is not None:
            raise RuntimeError("a Child can only be started once")
        req = self._req
        req.check_at_start()
        fds = self._state["fds"]
        try:
            pid, pidfd = _core.launch(_in_child.bootstrap, (self,), {}, req.bits,
                                      req.exit_signal, req.mode, req.stack_size,
                                      want_pidfd=req.want_pidfd, cgroup=req.cgroup,
                                      before=self._open_fds)
        except BaseException:
            close_all(fds)
            raise
        finally:
            self._cgroup_fd = None          # launch() closed it
        self._pid = self._state["pid"] = pid
        if pidfd >= 0:
            self._pidfd = pidfd
            fds.append(pidfd)
        weakref.finalize(self, abandon, self._state)
        if self._go is not None:
            try:
                write_id_maps(pid, req.uid_map, req.gid_map)
                os.write(self._go[1], b"g")
            except BaseException:
                self._abort()
                raise
        if self._done is not None and req.private_fds:
            # The child holds its own copy of the write end: when it dies
            # the pipe reads EOF even if it could not write.
            fds.remove(self._done[1])
            os.close(self._done[1])
        return self

    def _open_fds(self, cgroup_fd: Optional[int]) -> None:
        """After the audit event, before the clone: the fds the child needs."""
        reap_orphans()
        req, fds = self._req, self._state["fds"]
        self._cgroup_fd = cgroup_fd
        if not req.vm and req.result_channel:
            self._outbox = _result_channel.open_channel()
            fds.append(self._outbox)
            self._remember(self._outbox)
        if req.uid_map is not None or req.gid_map is not None:
            self._go = os.pipe()
            fds.extend(self._go)
        if req.thread or not req.want_pidfd:
            self._done = os.pipe()
            fds.extend(self._done)
            self._remember(self._done[1])
        if req.pdeathsig is not None:
            self._parent_pidfd = os.pidfd_open(os.getpid())
            fds.append(self._parent_pidfd)

    def _remember(self, fd: int) -> None:
        st = os.fstat(fd)
        self._identity[fd] = (st.st_dev, st.st_ino)

    def _abort(self) -> None:
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
        """What run() returned (after join), or None before then, after a
        failure, and with ``result_channel=False``.  Typed ``Any``: the value
        is whatever the target returns (pickled back in fork mode, the object
        itself under ``CLONE_VM``); annotate the variable you read it into."""
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

            def wake() -> None:
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
        elif self._req.thread:
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
        if self._req.vm:
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
        close_all(self._state["fds"])

    def __enter__(self) -> "Child":
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Joins the child and releases its fds (result and exitcode stay)."""
        if self._pid is not None:
            self.join()
            self.close()

    def __repr__(self) -> str:
        if self._pid is None:
            state = "initial"
        elif self._exitcode is None:
            state = "started"
        else:
            state = f"exitcode={self._exitcode}"
        return f"<{type(self).__name__} name={self.name!r} pid={self._pid} {state}>"

    def _check_started(self) -> int:
        if self._pid is None:
            raise RuntimeError("the Child has not been started: call start() first")
        return self._pid

    def _reap(self, block: bool) -> None:
        with self._reap_lock:
            if self._exitcode is not None:
                return
            me = self._check_started()
            options = WALL | (0 if block else os.WNOHANG)
            try:
                pid, status, usage = _core.wait4(me, options)
            except ChildProcessError:
                # Someone else reaped it (os.waitpid(-1), a SIGCHLD handler):
                # its status is lost.  As asyncio's pidfd watcher does: warn,
                # and report 255.
                import warnings
                warnings.warn(f"{self.name}: child {self._pid} was reaped by someone else "
                              "(os.waitpid(-1, ...) or a SIGCHLD handler?); its exit status "
                              "is lost: exitcode is 255", RuntimeWarning, stacklevel=4)
                pid, status, usage = me, 255 << 8, None
            if pid == 0:
                return
            self._rusage = usage
            self._state["reaped"] = True
            if self._outbox is not None:
                self._result, self._exception = _result_channel.receive(self._outbox, me)
            self._exitcode = os.waitstatus_to_exitcode(status)
            keep = {self._pidfd} if self._pidfd is not None else set()
            fds = self._state["fds"]
            close_all([fd for fd in fds if fd not in keep])
            fds[:] = list(keep)


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
