"""Builds prunekit's optional compiled sparse kernels (C, OpenMP); everything else is in pyproject.toml.

The extension is optional: without a C compiler the install still succeeds and prunekit runs with its other
kernels (it says so once, see prunekit/kernels/__init__.py)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("prunekit.kernels._sparse", ["src/prunekit/kernels/_sparse.c"],
                             extra_compile_args=["-O3", "-fopenmp", "-std=c11"], extra_link_args=["-fopenmp"],
                             optional=True)])
