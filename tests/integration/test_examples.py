"""Every site file we show runs as documented: ``preview`` and ``serve --simulate``.

The files are the README's headline site file and every file in ``examples/``; a listening
port is moved to 0 (a free one), because the documented ports may be taken on a test machine.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
README_SITE = "README.md#the-site-file"


def readme_site_file() -> str:
    """The YAML block under "## The site file" in the README."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## The site file", 1)[1]
    match = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


def site_text(name: str) -> str:
    if name == README_SITE:
        return readme_site_file()
    return (ROOT / "examples" / name).read_text(encoding="utf-8")


def on_free_ports(text: str) -> str:
    config = yaml.safe_load(text)
    for name, section in config.items():  # with --simulate the meter is simulated anyway
        if name != "meter" and isinstance(section, dict) and "port" in section:
            section["port"] = 0
    return yaml.safe_dump(config)


def run_all(argvs: dict[str, list[str]]) -> dict[str, tuple[int, str, str]]:
    """``energytree ARGV`` for every file at once (the runs are mostly start-up time)."""
    started = {name: subprocess.Popen([sys.executable, "-m", "energytree", *argv], cwd=ROOT,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for name, argv in argvs.items()}
    results = {}
    for name, process in started.items():
        out, err = process.communicate(timeout=300)
        results[name] = (process.returncode, out, err)
    return results


NAMES = [README_SITE, *(path.name for path in EXAMPLES)]


def written(tmp_path: Path, text_of: Callable[[str], str]) -> dict[str, Path]:
    files = {}
    for i, name in enumerate(NAMES):
        files[name] = tmp_path / f"site-{i}.yaml"
        files[name].write_text(text_of(name), encoding="utf-8")
    return files


def test_preview_accepts_every_site_file(tmp_path: Path) -> None:
    files = written(tmp_path, site_text)
    results = run_all({name: ["preview", str(path)] for name, path in files.items()})
    for name, (code, out, err) in results.items():
        assert code == 0, f"{name}: {err}"
        assert "plan:" in out, name


def test_serve_simulated_runs_and_stops_for_every_site_file(tmp_path: Path) -> None:
    files = written(tmp_path, lambda name: on_free_ports(site_text(name)))
    results = run_all({name: ["serve", str(path), "--simulate", "--duration", "3",
                              "--state-dir", str(tmp_path / f"state-{path.stem}")]
                       for name, path in files.items()})
    for name, (code, out, err) in results.items():
        assert code == 0, f"{name}: {err}"
        lines = out.splitlines()
        assert lines[-1] == "energytree stopped", name
        assert any(line.startswith("── energytree ") for line in lines), out
        first_evse = re.findall(r"evse: ([\w-]+)", site_text(name))[0]
        assert any(line.startswith(f"{first_evse} ") for line in lines), out
        assert (tmp_path / f"state-{files[name].stem}" / "audit.sqlite").exists(), name
        if "dashboard:" in site_text(name):  # the page's address comes first
            assert any(line.startswith("dashboard: http://127.0.0.1:") for line in lines), out
