"""The one place that defines how kernels are compiled.

``cache=True`` keeps compiled kernels on disk so a second run starts warm;
``error_model="numpy"`` makes division by zero give inf/nan instead of raising
(kernels never raise user-facing errors); fastmath stays off so results are
bit-reproducible across runs and machines with the same numba.

The cache lives in a folder named by a digest of every engine source file. Numba checks only
the file that defines a cached function, while a kernel holds compiled copies of the helpers
it calls from other files: after an edit of ``clinic.py`` alone, ``simulate_kernel`` would load
its old machine code and run the old rules. A new digest means a new, empty folder instead.

Helpers are compiled for the types of their arguments, never for literal values
(``_Dispatcher``): numba would otherwise compile a helper once for ``f(0)`` or ``f(True)`` and
again for the same call with the variable's final type (a counter starting at 0, a flag
starting True), which doubled the compile time of seven helpers of the kernel.
"""

import hashlib
import os
import shutil
from pathlib import Path

import numba
from numba.core import types
from numba.core.registry import CPUDispatcher

JIT_OPTIONS = dict(cache=True, error_model="numpy", fastmath=False, nogil=True)


ENGINE_SOURCES = Path(__file__).resolve().parent


def engine_cache_dir(engine: Path = ENGINE_SOURCES) -> Path:
    """Where compiled kernels are kept: under ``NUMBA_CACHE_DIR`` if set, else beside the
    engine's sources, in a folder named by their digest."""
    digest = hashlib.sha256(numba.__version__.encode())
    for source in sorted(engine.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    root = Path(os.environ.get("NUMBA_CACHE_DIR") or engine / "__pycache__")
    return root / f"engine-{digest.hexdigest()[:16]}"


def prune_stale_caches(current: Path) -> None:
    """Remove the compiled kernels of earlier engine sources (about 20 MB each) beside
    ``current``: in the package's own cache only one version of the sources is ever wanted.
    A shared ``NUMBA_CACHE_DIR`` is left alone, since other checkouts may use its folders."""
    for folder in current.parent.glob("engine-*"):
        if folder != current and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)


_CACHE = engine_cache_dir()
if not os.environ.get("NUMBA_CACHE_DIR") and not _CACHE.exists():
    prune_stale_caches(_CACHE)
# Read by numba when each cached function is decorated, so it is set before any kernel is.
numba.config.CACHE_DIR = str(_CACHE)


class _Dispatcher(CPUDispatcher):
    """A dispatcher whose callers in compiled code type their arguments without literals."""

    def get_call_template(self, args, kws):
        args = tuple(types.unliteral(arg) for arg in args)
        kws = {name: types.unliteral(arg) for name, arg in kws.items()}
        return super().get_call_template(args, kws)


def _compiled(function, **options):
    """``numba.njit(cache=True, **JIT_OPTIONS, **options)``, with the dispatcher above."""
    targetoptions = {key: value for key, value in JIT_OPTIONS.items() if key != "cache"}
    targetoptions.update(nopython=True, **options)
    dispatcher = _Dispatcher(function, targetoptions=targetoptions)
    if JIT_OPTIONS["cache"]:
        dispatcher.enable_caching()
    return dispatcher


def jit(function):
    """Compile ``function`` with the project's options."""
    return _compiled(function)


def jit_inline(function):
    """Compile ``function`` to be inlined into its callers: for small helpers on the hot path,
    where a call would cost more than the work (arguments are reference-counted per call)."""
    return _compiled(function, inline="always")
