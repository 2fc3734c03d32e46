"""The one place that defines how kernels are compiled.

``cache=True`` keeps compiled kernels on disk so a second run starts warm;
``error_model="numpy"`` makes division by zero give inf/nan instead of raising
(kernels never raise user-facing errors); fastmath stays off so results are
bit-reproducible across runs and machines with the same numba.
"""

import numba

JIT_OPTIONS = dict(cache=True, error_model="numpy", fastmath=False, nogil=True)


def jit(function):
    """Compile ``function`` with the project's options."""
    return numba.njit(**JIT_OPTIONS)(function)


def jit_inline(function):
    """Compile ``function`` to be inlined into its callers: for small helpers on the hot path,
    where a call would cost more than the work (arguments are reference-counted per call)."""
    return numba.njit(inline="always", **JIT_OPTIONS)(function)
