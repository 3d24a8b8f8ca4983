"""The smart-charging verbs of a charge point that keeps its profiles in a ``ProfileStore``.

Two of our charge points take charging profiles: the site towards the grid operator
(``upstream.SiteChargePoint``) and each EVSE towards the supplier
(``gatewaylink.EvseChargePoint``). Both answer SetChargingProfile, ClearChargingProfile and
GetCompositeSchedule the same way, in 1.6 and 2.0.1; they differ only in where the store
lives, which connectors exist and whether a transaction runs. Usage::

    class SiteChargePoint(ProfileHandlers, ChargePoint):
        def profile_store(self) -> ProfileStore: ...
        async def change_profiles(self, edit): ...
        ...
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ocpp.exceptions import PropertyConstraintViolationError
from ocpp.routing import on
from ocpp.v201.enums import Action  # the action names are the same strings in 1.6

from adapters.ocpp.composite import Transaction, composite_payload, composite_schedule
from adapters.ocpp.link import reason_fields
from adapters.ocpp.profiles import ProfileStore, parse_clear, parse_set_request
from adapters.ocpp.versions import OcppVersion
from energytree.errors import RequestError

__all__ = ["ProfileHandlers"]

LOG = logging.getLogger(__name__)


class ProfileHandlers:
    """SetChargingProfile, ClearChargingProfile, GetCompositeSchedule; Rejected or Unknown
    leave the store as it was. A subclass says where the store is and what exists."""

    version: OcppVersion
    connectors: tuple[int, ...]  # the connector ids this charge point takes profiles for

    def profile_store(self) -> ProfileStore:
        raise NotImplementedError

    async def change_profiles(self, edit: Callable[[ProfileStore], Any]) -> Any:
        """Apply ``edit`` to the store and keep the result; what ``edit`` returns."""
        raise NotImplementedError

    def running_transaction(self) -> Transaction | None:
        raise NotImplementedError

    def profile_context(self) -> tuple[datetime, float, str]:
        """Now, the nominal voltage [V] for A ↔ W, and a name for the log."""
        raise NotImplementedError

    def check_connector(self, connector: int) -> int:
        """``connector`` if it exists here; RequestError naming the ones that do."""
        if connector not in self.connectors:
            raise RequestError(f"connector {connector} does not exist; there are "
                               f"{', '.join(map(str, self.connectors))}")
        return connector

    @on(Action.set_charging_profile)
    async def on_set_charging_profile(self, **payload: Any) -> Any:
        """Install a profile; Rejected (with a reason in 2.0.1) leaves everything as it was."""
        v = self.version
        try:
            profile = parse_set_request(v, payload, self.connectors)
            tx = self.running_transaction()
            await self.change_profiles(lambda store: store.install(
                profile, tx.id if tx else None, v.rejects_duplicate_profiles))
        except RequestError as exc:
            LOG.warning("%s: SetChargingProfile rejected: %s", self.profile_context()[2], exc)
            return v.call_result.SetChargingProfile(
                status=v.set_profile_status.rejected, **reason_fields(v, exc))
        return v.call_result.SetChargingProfile(status=v.set_profile_status.accepted)

    @on(Action.clear_charging_profile)
    async def on_clear_charging_profile(self, **payload: Any) -> Any:
        """Clear by id or criteria: Accepted if something matched, else Unknown."""
        v = self.version
        try:
            criteria = parse_clear(v, payload)
        except RequestError as exc:
            raise PropertyConstraintViolationError(str(exc)) from exc
        found = await self.change_profiles(lambda store: store.clear(criteria))
        status = v.clear_profile_status.accepted if found else v.clear_profile_status.unknown
        return v.call_result.ClearChargingProfile(status=status)

    @on(Action.get_composite_schedule)
    async def on_get_composite_schedule(self, **payload: Any) -> Any:
        """The composite from now for ``duration`` s; gaps reported at libocpp's defaults."""
        v = self.version
        connector = payload[v.connector_field]
        now, voltage_v, _name = self.profile_context()
        try:
            composite = composite_schedule(
                self.profile_store(), self.check_connector(connector), now, payload["duration"],
                payload.get("charging_rate_unit"), voltage_v, self.running_transaction())
        except RequestError as exc:
            return v.call_result.GetCompositeSchedule(
                status=v.composite_status.rejected, **reason_fields(v, exc))
        return v.call_result.GetCompositeSchedule(**composite_payload(v, composite, connector))
