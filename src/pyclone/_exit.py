"""What runs in the child around the user's callable: the exit-status rules
(the table in docs/api-clone.md).  It never calls exit() or PyErr_Print on SystemExit:
in a child that shares the interpreter that would finalise the parent's."""
from __future__ import annotations

import sys

from . import _clone

TYPE_CHECKING = False      # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:          # signal's names, without signal.py's enum import at run time
    from signal import SIGTERM
else:
    from _signal import SIGTERM
# The C half of the signal module: signal.py builds its enums with enum at
# import, which would cost more than the rest of `import pyclone`.


class Terminated(BaseException):
    """Raised in a CLONE_VM child by :func:`pyclone.terminate` (and
    ``Child.terminate()``) at its next bytecode.  Like ``SystemExit`` it is
    a ``BaseException``: ``finally`` blocks and context managers run as it
    unwinds.  If it leaves the child's callable, the child ends as a process
    killed by SIGTERM (exit code ``-SIGTERM``).  A child may catch it, and
    then goes on."""


#: sys.stdout and sys.stderr flushed (either may be None), an Exception
#: from a flush ignored.  In C: the fork-mode parent calls it before every
#: fork, and each page it writes costs a copy-on-write fault per fork.
flush_std_streams = _clone.flush_std_streams


def system_exit_status(exc: SystemExit) -> int:
    """sys.exit()'s rules: None -> 0, int -> int, anything else printed -> 1."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        print(code, file=sys.stderr)
    except Exception:
        pass
    return 1


def status_of_result(result: object) -> int:
    """As in C: an int 0..255 is the status; None or anything else is 0."""
    if isinstance(result, int) and 0 <= result <= 255:
        return int(result)
    return 0


def on_return(result: object) -> int:
    """Called by the C core in the child when fn returned anything but None
    or an exact int (those the C core handles itself the same way: it
    flushes the standard streams as flush_std_streams does, and the status
    is the int if it is in 0..255, else 0)."""
    flush_std_streams()
    return 0 if result is None else status_of_result(result)


def on_exception(exc: BaseException) -> int:
    """Called by the C core in the child when fn raised ``exc``."""
    if isinstance(exc, Terminated):
        status = -SIGTERM        # the C core ends the child by that signal
    elif isinstance(exc, SystemExit):
        status = system_exit_status(exc)
    else:
        try:
            import traceback        # only a failing child pays for it
            traceback.print_exception(type(exc), exc, exc.__traceback__)
        except Exception:
            pass
        status = 1
    flush_std_streams()
    return status


# What every child ends with: the C core calls these (it decodes None and
# exact int results itself, as on_return would).
_clone.set_exit_rules(on_return, on_exception)
