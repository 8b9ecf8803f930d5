"""The one compiled piece of the core: batched datagram I/O for the socket platform.

Everything else is declared in pyproject.toml.  The extension is optional: without a C
compiler the install still succeeds and the socket platform uses recvfrom/sendto.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("fata.platform._mmsg", ["core/fata/platform/_mmsg.c"], optional=True,
                  extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers"]),
    ],
)
