"""Build of the C extension pyclone._clone (metadata lives in pyproject.toml)."""
import glob
import os
import re

from setuptools import Extension, setup

# The module's entry (argument parsing, the method table) and the C core
# under _c/: one file per concept, each header saying what runs where.
SOURCES = ["src/pyclone/_clonemodule.c"] + sorted(glob.glob("src/pyclone/_c/*.c"))
HEADERS = sorted(glob.glob("src/pyclone/_c/*.h"))

# The version, from the one place it is written; compiled into the C core so
# that `import pyclone` can tell a stale extension from a matching one.
with open("src/pyclone/_version.py") as f:
    VERSION = re.search(r'__version__ = "([^"]+)"', f.read()).group(1)

setup(
    ext_modules=[
        Extension(
            "pyclone._clone",
            sources=SOURCES,
            depends=HEADERS,
            extra_compile_args=["-std=gnu11", "-Wall", "-Wextra",
                                "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
            libraries=["dl", "m"],
            # Build as if this CPython were newer than any pyclone was tested
            # on (tests of that path: frame release off, a warning).
            define_macros=[("PYCLONE_VERSION", f'"{VERSION}"')]
                          + ([("PYCLONE_PRETEND_UNTESTED", "1")]
                             if os.environ.get("PYCLONE_PRETEND_UNTESTED") == "1" else []),
        ),
        # The C clones the benchmarks compare against (python -m pyclone bench).
        Extension("pyclone._baseline", sources=["benchmarks/baseline.c"],
                  extra_compile_args=["-std=gnu11", "-O2", "-Wall", "-Wextra",
                                      "-Wno-unused-parameter"]),
    ],
)
