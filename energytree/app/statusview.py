"""The live status as text: each EVSE's limit and why, the meter, the sources, the plan."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import tzinfo

from energytree.app.simulation import SimulatedEvse
from energytree.status import EvseStatus, Status

__all__ = ["render_status"]


def render_status(status: Status, zone: tzinfo,
                  simulated: Mapping[str, SimulatedEvse] | None = None) -> str:
    """A readable block for the terminal (one line per EVSE: granted, then measured)."""
    local = status.now.astimezone(zone)
    lines = [f"── energytree {local:%Y-%m-%d %H:%M:%S %Z} ── plan: {status.plan_method}"]
    lines.append(f"{'EVSE':<16} {'state':<12} {'A':>6} {'ph':>2} {'kW':>6} "
                 f"{'drawn':>10} {'SoC':>5}  why")
    for evse in status.evses:
        sim = (simulated or {}).get(evse.uuid)
        soc = f"{sim.car.soc_percent:5.1f}" if sim and sim.car else "    -"
        lines.append(
            f"{evse.uuid:<16.16} {evse.state or '-':<12.12} {evse.current_a:6.1f} "
            f"{evse.phases:>2} {evse.power_w / 1000:6.2f} {drawn(evse):>10} {soc}  {evse.reason}"
        )
    meter = status.meter
    if meter is not None:
        amps = "silent" if meter.current_a is None else " / ".join(
            f"{a:.1f}" for a in meter.current_a)
        power = "" if meter.power_w is None else f", {meter.power_w / 1000:.2f} kW"
        lines.append(f"grid meter: {meter.state}, L1/L2/L3 {amps} A{power}")
    for source in status.sources:
        flags = [x for x, on in (("binding", source.binding), ("failsafe", source.in_failsafe))
                 if on]
        until = "" if source.expires_at is None else f" until {source.expires_at:%H:%M:%S}Z"
        lines.append(f"source {source.name} on {source.node_uuid}{until}{source.applied_text()}"
                     f" {' '.join(flags)}")
    lines.extend(f"note: {note}" for note in status.plan_notes)
    return "\n".join(lines)


def drawn(evse: EvseStatus) -> str:
    """What the EVSE was measured drawing, beside what it was granted: ``2.30 kW 1ph``."""
    if evse.drawn_w is None:
        return "-"
    phases = "" if evse.drawn_phases is None else f" {evse.drawn_phases}ph"
    return f"{evse.drawn_w / 1000:.2f}{phases}"
