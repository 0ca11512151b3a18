"""The optional C speed-ups of the append path (raas.native); everything else about the package
is in pyproject.toml. Without a C compiler, OpenSSL's or SQLite's headers, the
build skips them and raas runs its pure-Python code path, which gives the same bytes."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "raas._native",
            ["src/raas/_native.c"],
            libraries=["sqlite3", "crypto"],
            extra_compile_args=["-O2", "-Wall", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)
