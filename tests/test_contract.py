"""The public names, values and signatures of pyclone's contract (docs/api-*.md)."""
import enum
import inspect
import os
import signal

import pytest

import pyclone

KERNEL_VALUES = {
    "CLONE_NEWTIME": 0x80, "CLONE_VM": 0x100, "CLONE_FS": 0x200, "CLONE_FILES": 0x400,
    "CLONE_SIGHAND": 0x800, "CLONE_PIDFD": 0x1000, "CLONE_PTRACE": 0x2000,
    "CLONE_VFORK": 0x4000, "CLONE_PARENT": 0x8000, "CLONE_THREAD": 0x10000,
    "CLONE_NEWNS": 0x20000, "CLONE_SYSVSEM": 0x40000, "CLONE_SETTLS": 0x80000,
    "CLONE_PARENT_SETTID": 0x100000, "CLONE_CHILD_CLEARTID": 0x200000,
    "CLONE_DETACHED": 0x400000, "CLONE_UNTRACED": 0x800000,
    "CLONE_CHILD_SETTID": 0x1000000, "CLONE_NEWCGROUP": 0x2000000,
    "CLONE_NEWUTS": 0x4000000, "CLONE_NEWIPC": 0x8000000, "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000, "CLONE_NEWNET": 0x40000000, "CLONE_IO": 0x80000000,
    "CLONE_CLEAR_SIGHAND": 0x100000000, "CLONE_INTO_CGROUP": 0x200000000,
}


@pytest.mark.parametrize("name,value", sorted(KERNEL_VALUES.items()))
def test_every_clone_flag_is_a_module_int_and_an_enum_member(name, value):
    assert getattr(pyclone, name) == value
    assert isinstance(getattr(pyclone, name), int)
    assert pyclone.CloneFlags[name] == value


def test_clone_flags_is_an_intflag_with_exactly_the_kernel_flags():
    assert issubclass(pyclone.CloneFlags, enum.IntFlag)
    assert {m.name for m in pyclone.CloneFlags} == set(KERNEL_VALUES)


def test_values_equal_the_os_module_where_it_has_them():
    names = [n for n in dir(os) if n.startswith("CLONE_")]
    if not names:
        pytest.skip("the os module has CLONE_* constants from 3.12 on")
    for name in names:
        assert getattr(pyclone, name) == getattr(os, name), name


def test_signal_byte_and_wait_options():
    assert pyclone.CSIGNAL == 0xFF
    assert pyclone.WNOTHREAD == 0x20000000
    assert pyclone.WALL == 0x40000000
    assert pyclone.WCLONE == 0x80000000


def test_stack_size_constants():
    assert pyclone.DEFAULT_STACK_SIZE == 8 * 1024 * 1024
    assert 0 < pyclone.MIN_STACK_SIZE <= 64 * 1024
    assert pyclone.MIN_STACK_SIZE <= 16384, "Linus' example uses a 16 KiB stack"


def test_flags_combine_with_signals_like_in_c():
    flags = pyclone.CLONE_VM | pyclone.CLONE_FS | signal.SIGCHLD
    assert int(flags) == 0x100 | 0x200 | 17
    assert isinstance(flags, int)


def test_signatures():
    sig = inspect.signature(pyclone.clone)
    assert list(sig.parameters) == ["fn", "flags", "stack_size", "args", "kwargs"]
    assert sig.parameters["flags"].default == signal.SIGCHLD
    assert sig.parameters["stack_size"].default is None
    assert sig.parameters["args"].kind is inspect.Parameter.KEYWORD_ONLY
    assert sig.parameters["kwargs"].default is None
    wsig = inspect.signature(pyclone.waitpid)
    assert list(wsig.parameters) == ["pid", "options"]
    assert wsig.parameters["pid"].default == -1
    assert wsig.parameters["options"].default == pyclone.WALL


def test_all_names_exist():
    for name in pyclone.__all__:
        assert hasattr(pyclone, name), name


def test_every_c_function_states_its_signature():
    import inspect

    from pyclone import _clone
    functions = [getattr(_clone, n) for n in dir(_clone) if callable(getattr(_clone, n))
                 and not isinstance(getattr(_clone, n), type)]
    assert len(functions) > 20
    for f in functions:
        inspect.signature(f)            # raises ValueError without a text signature
        assert f.__doc__.strip(), f.__name__
