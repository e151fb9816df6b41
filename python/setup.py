"""Build and install the cbrec Python package: the _cbrec C extension (over
the public C API in ../include/cbrec.h, with libcbrec linked statically) and
the pure-Python cbrec package around it.

Debian's setuptools only; nothing is downloaded:

    make python                                    # the build-tree copy the tests import
    PYTHONPATH=build/python/lib /usr/bin/python3   # ... which any script can use
    /usr/bin/python3 -m venv --system-site-packages VENV   # or install it: into a venv, since
    VENV/bin/pip install --no-build-isolation ./python   # Debian 12's python3 refuses (PEP 668)

The library is built by the repository's Makefile (``make libcbrec.a``), so
its compiler flags have one home. Environment:
    CBREC_LIB=path/to/libcbrec.a   link that archive instead (no make call)
    CBREC_SANITIZE=1               compile and link with ASan + UBSan
"""
import os
import shlex
import subprocess

import numpy
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def library():
    lib = os.environ.get("CBREC_LIB")
    if lib:
        return os.path.abspath(lib)
    subprocess.check_call(["make", "-C", ROOT, "libcbrec.a"])
    return os.path.join(ROOT, "libcbrec.a")


def pkg_config(*args):
    out = subprocess.check_output(["pkg-config", *args, "openblas", "jansson"], text=True)
    return shlex.split(out)


def version():
    with open(os.path.join(ROOT, "include", "cbrec.h"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("#define CB_VERSION_STRING"):
                return line.split('"')[1]
    return "0"


LIB = library()
sanitize = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"] if os.environ.get("CBREC_SANITIZE") else []
libs = pkg_config("--libs")
extension = Extension(
    "cbrec._cbrec",
    sources=["src/cbrec_module.c", "src/model.c"],
    depends=["src/binding.h", os.path.join(ROOT, "include", "cbrec.h"), LIB],
    include_dirs=[os.path.join(ROOT, "include"), numpy.get_include()],
    extra_compile_args=["-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Wshadow", "-Wstrict-prototypes",
                        "-Wno-unused-parameter", "-Wno-missing-field-initializers", "-Wno-cast-function-type"]
    + sanitize,
    extra_objects=[LIB],
    extra_link_args=libs + ["-lm", "-lpthread"] + sanitize,
)

setup(
    name="cbrec",
    version=version(),
    description="A content-based recommender (two-tower model) in C, with numpy in and out",
    packages=["cbrec"],
    ext_modules=[extension],
    python_requires=">=3.9",
    install_requires=["numpy"],
)
