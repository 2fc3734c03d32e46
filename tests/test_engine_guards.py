"""The engine stays finite at extreme but valid parameters, and says where it cannot."""

import math
from pathlib import Path

import numpy as np
import pytest

import simulator
from simulator.engine import clinic as cl
from simulator.engine.kernel import allocate_buffers
from simulator.engine.therapy import hill
from simulator.lowering import lower
from simulator.runner import _non_finite_message


@pytest.mark.parametrize("exposure, ec50, coefficient", [
    (1e-300, 1e300, 1e300), (1e300, 1e-300, 1e300), (1.0, 1.0, 1e300), (0.5, 1e-300, 50.0),
    (2.0, 1.0, 1e-300),
])
def test_hill_is_finite_and_a_fraction_at_extremes(exposure, ec50, coefficient):
    effect = hill(exposure, ec50, coefficient)
    assert math.isfinite(effect) and 0.0 <= effect <= 1.0


def test_hill_matches_the_power_form_where_that_is_finite():
    for exposure, ec50, coefficient in [(0.3, 0.1, 2.0), (0.05, 0.1, 3.5), (1.0, 2.0, 0.5)]:
        ratio = (exposure / ec50) ** coefficient
        assert hill(exposure, ec50, coefficient) == pytest.approx(ratio / (1 + ratio), rel=1e-12)


def test_a_saturating_drug_spares_the_drug_free_resistant_clone():
    """A steep Hill curve far below its EC50 (hill 40, ec50 1e-6, both within the schema's
    bounds) is a step function: sensitive cells die, resistant ones (which the drug does not
    touch) grow on, to the end of the run."""
    scenario = simulator.load_scenario("two-clone-teaching", overrides={
        "drugs.tki.hill": 40.0, "drugs.tki.ec50": 1e-6})
    result = simulator.simulate(scenario)
    assert result.end_time == scenario.simulation.duration_days
    assert np.isfinite(result.events["value"]).all()
    resistant = list(scenario.clones).index("resistant")
    assert result.final_cells.sum(axis=0)[resistant] > 0
    assert (result.trajectory["cells"] >= 0).all()


def test_a_non_finite_rate_is_reported_by_clone_site_and_day():
    scenario = simulator.load_scenario("two-clone-teaching")
    model = lower(scenario)
    buffers = allocate_buffers(model, 8, 64)
    buffers.clock[cl.BAD_CLONE] = 0
    buffers.clock[cl.BAD_SITE] = 0
    message = _non_finite_message(model, buffers, scenario)
    assert "clone 'sensitive'" in message and "site 'lung'" in message and "day 0" in message



def test_compiled_kernels_are_cached_by_a_digest_of_every_engine_source(tmp_path):
    """Numba checks only the file defining a cached function, but a kernel holds compiled
    copies of helpers from the other engine files: the cache folder is named by a digest of all
    of them, so an edit of any one starts from an empty cache instead of running stale code."""
    import shutil

    from simulator.engine import jit as engine_jit
    from simulator.engine.kernel import simulate_kernel

    assert Path(simulate_kernel._cache._cache_path).is_relative_to(engine_jit.engine_cache_dir())
    copy = tmp_path / "engine"
    shutil.copytree(engine_jit.ENGINE_SOURCES, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = engine_jit.engine_cache_dir(copy)
    assert before.name == engine_jit.engine_cache_dir().name
    with open(copy / "clinic.py", "a") as source:  # not the file that defines the kernel
        source.write("\n# an edit\n")
    assert engine_jit.engine_cache_dir(copy).name != before.name


def test_an_edit_of_the_engine_removes_the_kernels_compiled_from_earlier_sources(tmp_path):
    from simulator.engine import jit as engine_jit

    current = tmp_path / "engine-new"
    stale = [tmp_path / "engine-old1", tmp_path / "engine-old2"]
    for folder in [current, *stale]:
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "kernel.nbc").write_bytes(b"compiled")
    other = tmp_path / "not-an-engine"
    other.mkdir()
    engine_jit.prune_stale_caches(current)
    assert current.exists() and other.exists()
    assert not any(folder.exists() for folder in stale)


def _sum_of(count, flag):
    return count + flag


_sum_of_helper = None  # the test below compiles _sum_of with the engine's dispatcher


def _counting_caller(n):
    count = 0  # typed Literal[int](0) until numba has typed the loop
    flag = True
    for step in range(n):
        count += 1
        flag = flag and step >= 0
    return _sum_of_helper(count, flag) + _sum_of_helper(0, False)


def test_a_helper_is_compiled_once_whatever_literals_its_callers_pass():
    """A counter that starts at 0, a flag that starts True, a literal argument: numba's own
    dispatcher compiles the helper for each literal and again for the final types; the engine's
    compiles it once, for the types (half the cold compile of seven kernel helpers)."""
    from simulator.engine.jit import JIT_OPTIONS, _Dispatcher

    options = {key: value for key, value in JIT_OPTIONS.items() if key != "cache"}
    global _sum_of_helper
    _sum_of_helper = _Dispatcher(_sum_of, targetoptions=dict(nopython=True, **options))
    caller = _Dispatcher(_counting_caller, targetoptions=dict(nopython=True, **options))
    assert caller(3) == 4
    compiled_for = [tuple(map(str, signature)) for signature in _sum_of_helper.signatures]
    assert compiled_for == [("int64", "bool")]
