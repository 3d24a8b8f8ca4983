"""Remote commands from the supplier's backend, forwarded to the OCPP charger of the EVSE.

The gateway asks an ``EvseCommands`` port; for an EVSE on a charger connected to our CSMS this
sends the charger the matching call (1.6 RemoteStart/StopTransaction, Reset, GetConfiguration;
2.0.1 RequestStart/StopTransaction, Reset) and answers with the charger's status. EVSEs that
are not on an OCPP charger go to the ``fallback`` (energytree's own, embedded EVSEs).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from typing import Any

from adapters.ocpp import chargers
from adapters.ocpp.csms import ChargerSession, CsmsServer
from adapters.ocpp.evseport import EvseCommands

__all__ = ["ChargerCommands"]

log = logging.getLogger(__name__)
ACCEPTED = "Accepted"


class ChargerCommands:
    """``EvseCommands`` that reach real chargers through the CSMS (see the module docstring)."""

    def __init__(self, csms: CsmsServer, fallback: EvseCommands) -> None:
        self.csms = csms
        self.fallback = fallback
        self._remote_start_ids = itertools.count(1)

    def _locate(self, evse: str) -> tuple[ChargerSession, int] | None:
        """The connected charger session and connector of ``evse``, if it has one."""
        for session in self.csms.sessions.values():
            known = chargers.connectors_in(session.charger, [evse])
            for connector in known:
                if chargers.evse_uuid(session.charger, connector) == evse:
                    return session, connector
        return None

    def _on_charger(self, evse: str) -> bool:
        return any(evse == chargers.evse_uuid(c, n)
                   for c in self.csms.config.chargers for n in chargers.connectors_in(c, [evse]))

    async def _send(self, evse: str, session: ChargerSession, request: Any) -> bool:
        try:
            result = await session.call(request, suppress=False)
        except Exception as exc:  # a CallError or timeout from the charger: not accepted
            log.warning("EVSE %s: charger %s did not accept %s: %s", evse, session.charger.id,
                        type(request).__name__, exc)
            return False
        return str(getattr(result, "status", "")) == ACCEPTED

    async def remote_start(self, evse: str, id_tag: str) -> bool:
        if not self._on_charger(evse):
            return await self.fallback.remote_start(evse, id_tag)
        found = self._locate(evse)
        if found is None:
            return False  # the charger is offline
        session, connector = found
        v = session.version
        if v.name == "1.6":
            request = v.call.RemoteStartTransaction(id_tag=id_tag, connector_id=connector)
        else:
            request = v.call.RequestStartTransaction(
                id_token={"id_token": id_tag, "type": "Central"},
                remote_start_id=next(self._remote_start_ids), evse_id=connector)
        return await self._send(evse, session, request)

    async def remote_stop(self, evse: str) -> bool:
        if not self._on_charger(evse):
            return await self.fallback.remote_stop(evse)
        found = self._locate(evse)
        if found is None:
            return False
        session, connector = found
        running = [tx for tx, c in session.transactions.items() if c == connector]
        if not running:
            return False
        v = session.version
        if v.name == "1.6":
            request = v.call.RemoteStopTransaction(transaction_id=int(running[0]))
        else:
            request = v.call.RequestStopTransaction(transaction_id=running[0])
        return await self._send(evse, session, request)

    async def reset(self, evse: str, hard: bool) -> bool:
        if not self._on_charger(evse):
            return await self.fallback.reset(evse, hard)
        found = self._locate(evse)
        if found is None:
            return False
        session, _connector = found
        v = session.version
        kind = ("Hard" if hard else "Soft") if v.name == "1.6" else (
            "Immediate" if hard else "OnIdle")
        return await self._send(evse, session, v.call.Reset(type=kind))

    async def get_configuration(self, evse: str, keys: Sequence[str]) -> dict[str, str]:
        found = self._locate(evse) if self._on_charger(evse) else None
        if found is None or found[0].version.name != "1.6":
            return await self.fallback.get_configuration(evse, keys)
        session, _connector = found
        request = session.version.call.GetConfiguration(key=list(keys) or None)
        try:
            result = await session.call(request, suppress=False)
        except Exception as exc:
            log.warning("EVSE %s: GetConfiguration failed: %s", evse, exc)
            return {}
        return {str(item["key"]): str(item.get("value", ""))
                for item in result.configuration_key or []}
