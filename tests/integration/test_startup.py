"""Start-up failures through ``energytree serve``: one clear line, exit status 2, nothing left
running; and streaming commands that end quietly when their reader goes away."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from energytree.app.cli import main
from energytree.app.runtime import Service
from energytree.app.service import ServiceConfig

ROOT = Path(__file__).resolve().parents[2]
HOME = {
    "name": "home", "tick_s": 0.05, "plan_budget_s": 1, "status_interval_s": 3600,
    "grid": {"uuid": "house", "max_current_A": 35,
             "children": [{"evse": "garage", "max_current_A": 16}]},
}


def open_grpc(port: int) -> dict[str, Any]:
    """A gRPC section without tokens: allowed on loopback only, and only when said so."""
    return {"port": port, "allow_unauthenticated": True}


@contextlib.contextmanager
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 that somebody else listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve(tmp_path: Path, capsys: pytest.CaptureFixture[str], **sections: Any
          ) -> tuple[int, str]:
    """Run ``energytree serve`` in-process for a moment; the status and stderr."""
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump({**HOME, **sections}), encoding="utf-8")
    status = main(["serve", str(site), "--state-dir", str(tmp_path / "state"),
                   "--duration", "0.2"])
    return status, capsys.readouterr().err


SECTIONS = {
    "http_api": lambda port: {"port": port, "password": "secret"},
    "grpc": lambda port: open_grpc(port),
    "sunspec": lambda port: {"port": port},
    "csms": lambda port: {"port": port},
}


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_a_port_in_use_names_the_port_and_the_section(
        section: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with taken_port() as port:
        status, err = serve(tmp_path, capsys, **{section: SECTIONS[section](port)})
    assert status == 2
    (line,) = err.splitlines()
    assert line.startswith(f"energytree serve: {section}: ")
    assert f"port {port}" in line and f"{section}.port" in line
    assert "Traceback" not in err


def test_a_failed_start_stops_the_listeners_already_running(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    http_port, grpc_port = free_port(), free_port()
    with taken_port() as busy:
        status, err = serve(tmp_path, capsys, http_api={"port": http_port, "password": "p"},
                            grpc=open_grpc(grpc_port), csms={"port": busy})
    assert status == 2 and "csms: port" in err
    for port in (http_port, grpc_port):  # released: a new listener can bind at once
        with socket.socket() as again:
            again.bind(("127.0.0.1", port))


@pytest.mark.parametrize("name", ["sessions.sqlite", "audit.sqlite"])
def test_a_corrupt_log_is_named_and_kept(
        name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    state.mkdir()
    garbage = b"this is not a database" * 100
    (state / name).write_bytes(garbage)
    status, err = serve(tmp_path, capsys)
    assert status == 2
    (line,) = err.splitlines()
    assert str(state / name) in line and "damaged" in line and "move it aside" in line
    assert (state / name).read_bytes() == garbage  # never reset silently


def test_a_corrupt_state_file_is_named(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "manager.json").write_text('{"leases": [', encoding="utf-8")
    status, err = serve(tmp_path, capsys)
    assert status == 2
    (line,) = err.splitlines()
    assert str(state / "manager.json") in line and "invalid JSON" in line


def test_a_state_directory_that_is_a_file_is_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(HOME), encoding="utf-8")
    status = main(["serve", str(site), "--state-dir", str(site / "state")])
    assert status == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"energytree serve: {site / 'state'}: cannot use as the state "
                           "directory: Not a directory")


def test_negative_currents_are_reported_by_line_for_every_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(
        "grid:\n"
        "  uuid: house\n"
        "  max_current_A: -35\n"
        "  children:\n"
        "    - evse: garage\n"
        "      max_current_A: -16\n"
        "      min_current_A: -6\n", encoding="utf-8")
    status = main(["serve", str(site), "--state-dir", str(tmp_path / "state")])
    err = capsys.readouterr().err
    assert status == 2
    assert err.splitlines() == [
        f"energytree serve: {site}:3: grid.max_current_A: must not be negative (got -35); "
        "0 blocks the node",
        f"{site}:6: grid.children.0.evse.max_current_A: must not be negative (got -16); "
        "0 blocks the node",
        f"{site}:7: grid.children.0.evse.min_current_A: "
        "Input should be greater than or equal to 0",
    ]
    assert not (tmp_path / "state").exists()


def watch_into_head(port: int) -> tuple[bytes, bytes, int]:
    """``energytree limits watch | head -n 1``: head's output, watch's stderr and status."""
    watch = subprocess.Popen(
        [sys.executable, "-m", "energytree", "limits", "watch", "--server", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    head = subprocess.Popen(["head", "-n", "1"], stdin=watch.stdout, stdout=subprocess.PIPE)
    assert watch.stdout is not None and watch.stderr is not None
    watch.stdout.close()  # only head reads it now
    out, _ = head.communicate(timeout=120)
    err = watch.stderr.read()
    watch.stderr.close()
    return out, err, watch.wait(timeout=120)


async def test_limits_watch_ends_quietly_on_a_closed_pipe(tmp_path: Path) -> None:
    port = free_port()
    config = ServiceConfig.model_validate({**HOME, "grpc": open_grpc(port)})
    service = Service(config, tmp_path / "state", simulate=True)
    try:
        await service.start()
        out, err, status = await asyncio.to_thread(watch_into_head, port)
    finally:
        await service.stop()
    assert out.startswith(b"[") and out.count(b"\n") == 1
    assert err == b""
    assert status == 0


def test_a_silent_meter_is_one_warning_not_a_line_per_poll(tmp_path: Path) -> None:
    """pymodbus would print "No response received" on every poll, with hex dumps."""
    site = tmp_path / "site.yaml"
    with taken_port() as port:  # accepts connections (the backlog), never answers
        meter = {"register_map": "socomec-countis-e27", "host": "127.0.0.1", "port": port,
                 "timeout_s": 0.3, "poll_interval_s": 0.2, "reconnect_max_s": 0.5}
        site.write_text(yaml.safe_dump({**HOME, "meter": meter}), encoding="utf-8")
        result = subprocess.run(
            [sys.executable, "-m", "energytree", "serve", str(site), "--duration", "4",
             "--state-dir", str(tmp_path / "state")],
            capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "WARNING adapters.meter.client: Communication warning for modbus unit" in lines[0]


def test_grpc_core_adds_nothing_to_the_one_line(tmp_path: Path) -> None:
    """gRPC's C core writes its own "Failed to add port" line to stderr unless told not to."""
    site = tmp_path / "site.yaml"
    with taken_port() as port:
        site.write_text(yaml.safe_dump({**HOME, "grpc": open_grpc(port)}), encoding="utf-8")
        result = subprocess.run(
            [sys.executable, "-m", "energytree", "serve", str(site),
             "--state-dir", str(tmp_path / "state")],
            capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"energytree serve: grpc: cannot listen on 127.0.0.1:{port}, probably in use: stop the "
        f"program that uses port {port} or set another grpc.port in the site file"]
