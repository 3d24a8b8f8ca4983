"""``ripple``: the grid operator's ripple-control contacts (2 contacts → 4 power levels).

The contacts are read from a Modbus I/O module; the formulas see them as ``inputs``.
"""

from __future__ import annotations

from adapters.ripple import RippleConfig, RippleLevel, RippleReceiver
from energytree.app.plugs.base import Plug
from energytree.variables import Origin

__all__ = ["RipplePlug"]

RIPPLE = Origin("ripple", "contacts")


class RipplePlug(Plug[RippleConfig]):
    section = "ripple"
    model = RippleConfig
    summary = "ripple-control contacts read over Modbus TCP, each level a limit on the root"
    limit_source = "ripple"

    receiver: RippleReceiver | None = None

    async def start(self) -> None:
        self.receiver = RippleReceiver(self.config, on_change=self._on_change)
        await self.receiver.start()
        self.closing(self.receiver.stop)


    def _on_change(self, level: RippleLevel, inputs: object) -> None:
        site = self.site
        site.inputs = (None, None) if not isinstance(inputs, tuple) else tuple(
            None if v is None else float(v) for v in inputs)  # type: ignore[assignment]
        site.operator_limit(RIPPLE, level.limit_w(site.percent_base_w()),
                            f"contacts {level.source}")
