"""qbench.testing: what a plugin's tests may use (with :mod:`qbench.api` for plugin code).

* :class:`MethodConformance`: the conformance suite. The host's own tests
  (``tests/test_conformance.py``, in a qbench checkout) run it on every installed method, so a
  plugin there cannot skip it; a plugin in its own repository subclasses it in its tests, since
  those host tests are not installed with qbench.
* :mod:`qbench.testing.helpers`: models, data, the QAT build and suite runs, re-exported here.
* ``fake_cpu(features)``: a block where the host sees another CPU (e.g. ``"x86-64-v2"``, no
  AVX2), for the path a compiled kernel takes where it cannot run.
* ``one_torch_thread``: an autouse fixture a plugin's conftest can import; ``torch_threads(n)``:
  a block on n threads, for a compiled kernel's split.
* The pytest plugin (entry point ``pytest11``) in :mod:`qbench.testing.plugin`.
"""
from qbench.testing.conformance import FAMILIES, RECIPE, MethodConformance, fp_model, qat, tiny_digits
from qbench.testing.crash import KillWeight
from qbench.testing.helpers import *  # noqa: F403  (the re-exports are listed in helpers.__all__)
from qbench.testing.helpers import __all__ as _helpers
from qbench.testing.kernels import fake_cpu
from qbench.testing.syncs import counted_reads
from qbench.testing.threads import one_torch_thread, torch_threads

__all__ = ["MethodConformance", "FAMILIES", "RECIPE", "fp_model", "qat", "tiny_digits", "one_torch_thread",
           "torch_threads", "fake_cpu", "counted_reads", "KillWeight", *_helpers]
