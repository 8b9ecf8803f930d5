"""The compiled pieces of the core: batched I/O for the socket and TAP platforms.

Everything else is declared in pyproject.toml.  Both extensions are optional: without a C
compiler the install still succeeds, the socket platform uses recvfrom/sendto and the TAP
platform loops over os.readv/os.writev.
"""

from setuptools import Extension, setup

FLAGS = ["-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers"]

setup(
    ext_modules=[
        Extension(f"fata.platform.{name}", [f"core/fata/platform/{name}.c"], optional=True,
                  extra_compile_args=FLAGS)
        for name in ("_mmsg", "_frames")
    ],
)
