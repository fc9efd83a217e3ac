"""Build of the C extension pyclone._clone (metadata lives in pyproject.toml)."""
import os

from setuptools import Extension, setup

SOURCES = ["_clonemodule.c", "child.c", "cstack.c", "frames.c", "host.c", "rawclone.c", "sem.c",
           "stack.c", "terminate.c", "tstate.c", "watchdog.c"]

setup(
    ext_modules=[
        Extension(
            "pyclone._clone",
            sources=["src/pyclone/" + name for name in SOURCES],
            depends=["src/pyclone/" + name for name in
                     ("compat.h", "child.h", "cstack.h", "frames.h", "host.h", "rawclone.h", "sem.h",
                      "stack.h", "terminate.h", "tstate.h", "watchdog.h")],
            extra_compile_args=["-std=gnu11", "-Wall", "-Wextra",
                                "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
            libraries=["dl", "m"],
            # Build as if this CPython were newer than any pyclone was tested
            # on (tests of that path: frame release off, a warning).
            define_macros=([("PYCLONE_PRETEND_UNTESTED", "1")]
                           if os.environ.get("PYCLONE_PRETEND_UNTESTED") == "1" else []),
        )
    ],
)
