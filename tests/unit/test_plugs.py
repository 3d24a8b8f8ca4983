"""The registry: one plug per site-file section, started in order and stopped in reverse."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from energytree.app import runtime
from energytree.app.plugs.base import Plug
from energytree.app.plugs.registry import PLUGS, site_file_model
from energytree.app.service import ServiceConfig, ServiceSettings

SITE = {"grid": {"uuid": "house", "max_current_A": 35,
                 "children": [{"evse": "garage", "max_current_A": 16}]},
        "tick_s": 0.05, "status_interval_s": 3600}


def test_every_plug_is_a_section_of_the_site_file() -> None:
    sections = [plug.section for plug in PLUGS]
    assert len(set(sections)) == len(sections)
    fields = ServiceConfig.model_fields
    for plug in PLUGS:
        field = fields[plug.section]
        assert field.description == plug.summary
        assert field.annotation is plug.model or plug.model in typing.get_args(field.annotation)
    assert ServiceConfig.model_validate(SITE).meter is None  # type: ignore[attr-defined]


class EchoSection(BaseModel):
    """A channel that only says when it starts and stops."""

    model_config = ConfigDict(extra="forbid")
    word: str = Field("hello", description="what it says")


EVENTS: list[str] = []


def echo(section: str) -> type[Plug[EchoSection]]:
    class Echo(Plug[EchoSection]):
        model = EchoSection
        summary = "an echo"

        async def start(self) -> None:
            EVENTS.append(f"start {self.section} {self.config.word}")

        async def stop(self) -> None:
            EVENTS.append(f"stop {self.section}")

    Echo.section = section
    return Echo


async def test_a_new_channel_is_one_plug_and_one_registry_entry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plugs: tuple[type[Plug[Any]], ...] = (echo("first"), *PLUGS, echo("second"))
    model = site_file_model(ServiceSettings, "WithEcho", plugs)
    config = model.model_validate({**SITE, "first": {"word": "a"}, "second": {}})
    monkeypatch.setattr(runtime, "PLUGS", plugs)
    EVENTS.clear()
    service = runtime.Service(config, tmp_path)  # type: ignore[arg-type]
    await service.start()
    await service.stop()
    assert EVENTS == ["start first a", "start second hello", "stop second", "stop first"]
    assert list(service.plugs) == ["first", "second"]
    with pytest.raises(ValueError, match=r"first\.loud"):
        model.model_validate({**SITE, "first": {"word": "a", "loud": True}})
