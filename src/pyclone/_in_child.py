"""What runs in a Child's child around its run(): the plan's callable.

It runs as Python, after the C core has made the child an interpreter of
its own (fork mode: after PyOS_AfterFork_Child; CLONE_VM modes: on its own
thread state), so ordinary Python rules apply.  In order: wait for the id
maps, set pdeathsig, close what pyclone no longer needs, run, hand back
the outcome, mark the end on the pipe sentinel.
"""
from __future__ import annotations

import os
import select
import sys

from . import _clone, _exit, _result_channel

TYPE_CHECKING = False      # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:          # signal's names, without signal.py's enum import at run time
    from signal import SIG_DFL
    from signal import signal as set_handler
else:
    from _signal import SIG_DFL
    from _signal import signal as set_handler

if TYPE_CHECKING:
    from .child import Child


def bootstrap(child: Child) -> int:
    """Runs ``child.run()`` in the child; returns the exit status."""
    status = 1
    try:
        try:
            _prepare(child)
            value = child.run()
        except SystemExit as exc:
            status = _exit.system_exit_status(exc)
        except _exit.Terminated:
            raise                       # on_exception: ends as killed by SIGTERM
        except BaseException as exc:
            print(f"{child.name} (pid {os.getpid()}):", file=sys.stderr)
            import traceback            # only a failing child pays for it
            traceback.print_exception(type(exc), exc, exc.__traceback__)
            _report(child, exc=exc)
            status = 1
        else:
            status = 0 if _report(child, value=value) else 1
    finally:
        done = child._done
        if done is not None and _still_ours(child, done[1], "end-of-child pipe",
                                            "learns that the child ended only when it exits"):
            os.write(done[1], b"x")
    return status


def _prepare(child: Child) -> None:
    req = child._req
    # Without CLONE_FILES the fd table is the child's own copy: what is used
    # up here is closed, so that the target starts with only own_fds.  (With
    # it, these are the parent's fds: left alone.)
    if req.private_fds:
        if child._done is not None:
            os.close(child._done[0])        # the parent's end
        if child._cgroup_fd is not None:
            os.close(child._cgroup_fd)      # open in the parent during the clone
    if child._go is not None:
        # The parent writes our id maps, then says go (EOF: it failed).
        if os.read(child._go[0], 1) != b"g":
            os._exit(127)
        if req.private_fds:
            os.close(child._go[0])
            os.close(child._go[1])
    if req.pdeathsig is not None:
        _clone.set_pdeathsig(req.pdeathsig)
        # The parent may have died before the line above: then nothing will
        # send the signal, so act as if it had arrived.
        parent_pidfd = child._parent_pidfd
        assert parent_pidfd is not None      # opened by start() with pdeathsig
        poller = select.poll()
        poller.register(parent_pidfd, select.POLLIN)
        if poller.poll(0):
            try:
                set_handler(req.pdeathsig, SIG_DFL)
            except (ValueError, OSError):   # SIGKILL/SIGSTOP, or not the main thread
                pass
            os.kill(os.getpid(), req.pdeathsig)
            os._exit(128 + req.pdeathsig)   # an init ignores it
        if req.private_fds:
            os.close(parent_pidfd)


def _report(child: Child, value: object = None, exc: BaseException | None = None) -> bool:
    """Hands the outcome to the parent; False if the value cannot be."""
    req = child._req
    if not req.result_channel:
        return True
    if req.vm:
        child._result, child._exception = value, exc     # shared memory
        return True
    outbox = child._outbox
    assert outbox is not None               # made by start() with the result channel
    data, is_value = _result_channel.encode(child.name, value, exc)
    if not _still_ours(child, outbox, "result channel",
                       "cannot have the result: the child exits with status 1"):
        return False
    _result_channel.send(outbox, data)
    return is_value


def _still_ours(child: Child, fd: int, what: str, consequence: str) -> bool:
    """Whether ``fd`` is still the file pyclone gave the child (the target may
    have closed it, and opened something else under its number)."""
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) == child._identity[fd]:
            return True
    except OSError:
        pass
    print(f"pyclone: {child.name} (pid {os.getpid()}): the target closed fd {fd}, "
          f"pyclone's {what}, so the parent {consequence}. Keep Child.own_fds open in a "
          "loop that closes fds, or pass result_channel=False to start without a result "
          "channel.", file=sys.stderr)
    return False
