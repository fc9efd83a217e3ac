"""What runs in the child around the user's callable: the exit rules of
DESIGN.md.  It never calls exit() or PyErr_Print on SystemExit: in a child
that shares the interpreter that would finalise the parent's."""
import sys
import traceback


def flush_std_streams():
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            pass


def system_exit_status(exc):
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


def print_exception():
    try:
        traceback.print_exc()
    except Exception:
        pass


def status_of_result(result):
    """As in C: an int 0..255 is the status; None or anything else is 0."""
    if isinstance(result, int) and 0 <= result <= 255:
        return int(result)
    return 0


def child_main(fn, args, kwargs):
    """Called (by the C core) in the child; returns the exit status."""
    try:
        status = status_of_result(fn(*args, **kwargs))
    except SystemExit as exc:
        status = system_exit_status(exc)
    except BaseException:
        print_exception()
        status = 1
    flush_std_streams()
    return status
