"""Site limits written as formulas, evaluated every tick into external-limit sources.

A site file may write ``max_current_A``, ``max_power_W`` or an EVSE's ``charging_rule`` (in mA,
as in cFos) as a formula over variables and live facts. Each tick turns them into one external
limit per node under the source name ``formula``. A formula that fails because of what it
reads allows nothing on its node (the root still gets the §14a floor); its failure is logged
once, again once after each change of the variables, and its recovery once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from energytree.errors import ConfigError, EnergyTreeError
from energytree.formula import Formula, FormulaEnvironment
from energytree.problem import ExternalSource
from energytree.site import EvseConfig, FuseConfig, GridConfig
from energytree.types import ExternalLimits, LimitsReq, ScheduleReqEntry

__all__ = ["FORMULA", "SiteFormulas"]

log = logging.getLogger(__name__)
FORMULA = "formula"  # the external-limit source of every formula
FIELDS = ("max_current_A", "max_power_W", "charging_rule")


class SiteFormulas:
    """The site file's formulas, parsed once; ``sources`` evaluates them."""

    def __init__(self, grid: GridConfig, voltage_v: float) -> None:
        self.root, self._root_phases, self._voltage_v = grid.uuid, grid.phases, voltage_v
        self.formulas: list[tuple[str, str, Formula]] = []
        self._visit(grid.uuid, grid)
        self._failing: set[str] = set()  # failing now: its recovery is logged
        self._told: set[str] = set()  # failing and logged since the last change

    def _visit(self, uuid: str, node: GridConfig | FuseConfig | EvseConfig) -> None:
        for field in FIELDS:
            text = getattr(node, field, None)
            if isinstance(text, str):
                try:
                    self.formulas.append((uuid, field, Formula.parse(text)))
                except EnergyTreeError as exc:
                    raise ConfigError(f"{uuid}.{field}: {exc}") from exc
        for child in getattr(node, "children", []):
            self._visit(child.evse if isinstance(child, EvseConfig) else child.fuse, child)

    def variables_changed(self) -> None:
        """A formula that still fails is logged once more."""
        self._told.clear()

    def sources(self, now: datetime, env: FormulaEnvironment, floor_w: float,
                extra: Sequence[tuple[str, str, Formula]] = ()) -> list[ExternalSource]:
        """Every formula (and ``extra`` ones) evaluated now; the root's never below
        ``floor_w``."""
        sources = []
        for node, field, formula in [*self.formulas, *extra]:
            value = self._evaluated(node, field, formula, env)
            if node == self.root:  # §14a: a dimming formula leaves at least Pmin
                floor = floor_w
                if field == "max_current_A":
                    floor /= self._root_phases * self._voltage_v
                value = max(value, floor)
            if field == "max_power_W":
                limits = LimitsReq(total_power_W=value)
            else:  # a charging rule is in mA, as in cFos
                amps = value / 1000.0 if field == "charging_rule" else value
                limits = LimitsReq(ac_max_current_A=amps)
            entry = ScheduleReqEntry(timestamp=now, limits_to_root=limits,
                                     limits_to_leaves=LimitsReq())
            sources.append(ExternalSource(FORMULA, node, ExternalLimits(schedule_import=[entry])))
        return sources

    def _evaluated(self, node: str, field: str, formula: Formula,
                   env: FormulaEnvironment) -> float:
        """The formula's value, not below 0; a failing one gives 0."""
        key = f"{node}.{field} = {formula.source}"
        try:
            value = max(0.0, formula.evaluate(env))
        except EnergyTreeError as exc:
            self._failing.add(key)
            if key not in self._told:
                log.warning("formula %s of %s failed (%s); using 0", field, node, exc)
                self._told.add(key)
            return 0.0
        if key in self._failing:  # the fault ends: say so once
            self._failing.discard(key)
            self._told.discard(key)
            log.warning("formula %s of %s works again (recovered): %g", field, node, value)
        return value
