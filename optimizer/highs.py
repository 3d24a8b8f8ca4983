"""HiGHS through its C API, kept between solves so that a re-solve starts from the last basis.

OR-Tools' model builder hands a fresh copy of the model to a fresh solver for every solve, so
each of the minimum-current repair's re-solves costs as much as the first. HiGHS itself keeps
its basis when only column bounds change, and its dual simplex then re-optimises in tens of
iterations. OR-Tools ships HiGHS as a shared library of its own, which its solver wrapper
loads; a second HiGHS in the same process (``highspy``) clashes with it. So this module calls
the C API of that same library with ``ctypes``. ``load()`` returns None where the library is
not found or not as expected; ``solve.py`` then solves cold through OR-Tools.
"""

from __future__ import annotations

import ctypes
import weakref
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from types import MappingProxyType

import numpy as np
import ortools
from ortools.linear_solver.python import model_builder_helper  # noqa: F401  (loads HiGHS)

from optimizer.model import LinearModel

__all__ = ["OPTIONS", "HighsError", "WarmHighs", "load"]

ROWWISE = 2  # kHighsMatrixFormatRowwise
MINIMIZE = 1  # kHighsObjSenseMinimize
OPTIMAL = 7  # kHighsModelStatusOptimal
STATUS_NAMES = {8: "INFEASIBLE", 9: "UNBOUNDED_OR_INFEASIBLE", 10: "UNBOUNDED",
                13: "TIME_LIMIT", 14: "ITERATION_LIMIT"}
PATTERNS = ("libhighs.so*", "libhighs*.dylib", "highs*.dll")
# Where ours differ from HiGHS' defaults. Presolve removes little from this model (no fixed
# or singleton columns to speak of) and costs more than it saves: the dual simplex on the
# whole model is about 30 % faster, at 10 to 3000 EVSEs (``bench/endtoend.py``).
OPTIONS: Mapping[str, str] = MappingProxyType({"presolve": "off"})


class HighsError(RuntimeError):
    """A HiGHS call failed, or the solve ended other than optimal."""


class _Api:
    """The C functions used here, with their argument types (``HighsInt`` as the library
    was built: 32 or 64 bits)."""

    def __init__(self, lib: ctypes.CDLL, int_type: type) -> None:
        self.lib, self.int_type = lib, int_type
        self.int_dtype = np.dtype(np.int64 if int_type is ctypes.c_int64 else np.int32)
        p, i, d, s = ctypes.c_void_p, int_type, ctypes.c_double, ctypes.c_char_p
        floats = np.ctypeslib.ndpointer(np.float64, flags="C_CONTIGUOUS")
        ints = np.ctypeslib.ndpointer(self.int_dtype, flags="C_CONTIGUOUS")
        signatures = {
            "Highs_create": (p, []),
            "Highs_destroy": (None, [p]),
            "Highs_setBoolOptionValue": (i, [p, s, i]),
            "Highs_setDoubleOptionValue": (i, [p, s, d]),
            "Highs_setStringOptionValue": (i, [p, s, s]),
            "Highs_passLp": (i, [p, i, i, i, i, i, d, floats, floats, floats, floats, floats,
                                 ints, ints, floats]),
            "Highs_changeColsBoundsByRange": (i, [p, i, i, floats, floats]),
            "Highs_run": (i, [p]),
            "Highs_getModelStatus": (i, [p]),
            "Highs_getObjectiveValue": (d, [p]),
            "Highs_getRunTime": (d, [p]),
            "Highs_getSolution": (i, [p, floats, floats, floats, floats]),
        }
        for name, (result, arguments) in signatures.items():
            function = getattr(lib, name)
            function.restype, function.argtypes = result, arguments
            setattr(self, name.removeprefix("Highs_"), function)


@cache
def load() -> _Api | None:
    """The C API of the HiGHS library that OR-Tools ships (None if it is not found)."""
    folder = Path(ortools.__file__).parent / ".libs"
    found = sorted(path for pattern in PATTERNS for path in folder.glob(pattern))
    for path in found:
        try:
            lib = ctypes.CDLL(str(path))
            lib.Highs_getSizeofHighsInt.restype = ctypes.c_int
            lib.Highs_getSizeofHighsInt.argtypes = [ctypes.c_void_p]
            lib.Highs_versionMajor.restype = ctypes.c_int
            if lib.Highs_versionMajor() != 1:
                continue
            size = lib.Highs_getSizeofHighsInt(None)
        except (OSError, AttributeError):
            continue
        if size in (4, 8):
            return _Api(lib, ctypes.c_int32 if size == 4 else ctypes.c_int64)
    return None


def _floats(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float64)


class WarmHighs:
    """One HiGHS instance holding ``model``; each ``solve`` changes the column bounds only.
    ``options`` are HiGHS string options (``{}``: HiGHS' defaults)."""

    def __init__(self, api: _Api, model: LinearModel,
                 options: Mapping[str, str] = OPTIONS) -> None:
        self.api, self.model = api, model
        self.handle = api.create()
        if not self.handle:
            raise HighsError("HiGHS could not be created")
        weakref.finalize(self, api.destroy, self.handle)
        self._check(api.setBoolOptionValue(self.handle, b"output_flag", 0), "options")
        for name, value in options.items():
            self._check(api.setStringOptionValue(self.handle, name.encode(), value.encode()),
                        f"the option {name}={value}")
        matrix = model.matrix
        rows, columns = matrix.shape
        ints = api.int_dtype
        self._check(api.passLp(
            self.handle, columns, rows, matrix.nnz, ROWWISE, MINIMIZE, 0.0, _floats(model.cost),
            _floats(model.lower), _floats(model.upper), _floats(model.row_lower),
            _floats(model.row_upper), np.ascontiguousarray(matrix.indptr, dtype=ints),
            np.ascontiguousarray(matrix.indices, dtype=ints), _floats(matrix.data)), "the model")

    def solve(self, lower: np.ndarray, upper: np.ndarray, time_limit_s: float
              ) -> tuple[np.ndarray, float]:
        """Column values and objective with these bounds, from the last basis."""
        api, handle = self.api, self.handle
        columns = self.model.matrix.shape[1]
        self._check(api.changeColsBoundsByRange(handle, 0, columns - 1, _floats(lower),
                                                _floats(upper)), "the bounds")
        # HiGHS counts its time limit over all runs of the instance
        limit = api.getRunTime(handle) + time_limit_s
        self._check(api.setDoubleOptionValue(handle, b"time_limit", limit), "options")
        api.run(handle)  # the model status says how it ended
        status = api.getModelStatus(handle)
        if status != OPTIMAL:
            raise HighsError(f"the highs solver ended with {STATUS_NAMES.get(status, status)}")
        values = np.empty(columns)
        rows = self.model.matrix.shape[0]
        self._check(api.getSolution(handle, values, np.empty(columns), np.empty(rows),
                                    np.empty(rows)), "the solution")
        return values, float(api.getObjectiveValue(handle))

    @staticmethod
    def _check(status: int, what: str) -> None:
        if status < 0:  # kHighsStatusError; warnings (1) are fine
            raise HighsError(f"HiGHS refused {what}")
