"""``energytree plan`` end to end: ``python -m bench.endtoend [N ...]`` prints one row per size.

For each N the synthetic day of ``bench/instance.py`` is written as request JSON and planned
the way ``energytree plan`` does it (the cyclic garbage collector paused, as in the command),
each stage timed in this process: parse the JSON, build the problem, build the model, the LP
(the model handed to HiGHS, and solved), the minimum-current repair (its rounding and its
warm re-solves), the rest of the plan (currents and reasons per cell, EVSEs without a
target), writing the JSON. The baseline, in the same run: a bare HiGHS solve of the same
model, cold, with HiGHS' default options (the model handed to a fresh HiGHS through the same
C API, and solved), once before the plan and once after; ``bare_s`` is the faster of the two
(the first large solve in a process is often the slower one). ``ratio`` = end to end ÷ bare
solve. ``ours_s`` is the same cold solve with the planner's options
(``optimizer.highs.OPTIONS``); ``ortools_s`` the cold solve through OR-Tools' model builder
(the baseline before the C API was used). Then the real command in a fresh interpreter: its
wall time and peak memory, and the time its imports alone take. Quality: the plan's
objective against the LP bound (gap), the energy missing at leave time in the plan and in
the LP relaxation, and the solves the plan took.

``--untargeted 0.33`` leaves that share of the cars without a target: the planner then shares
what the planned EVSEs leave among them, slot by slot (the instant allocator, in the rest of
the plan); the day is otherwise the same.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench.baseline import bare_solve
from bench.instance import DAY_START, make_request
from energytree.app.cli import no_cyclic_gc
from energytree.inputs import load_request
from energytree.planjson import write_enforced_limits
from energytree.problem import PlanOptions, build_problem
from optimizer import PlanReport, optimise_with_report
from optimizer.model import build_model
from optimizer.solve import Solver, solve

HEADER = ("N", "e2e_s", "bare_s", "ratio", "ours_s", "ortools_s", "parse_s", "problem_s", "model_s",
          "lp_s", "repair_s", "rest_s", "write_s", "process_s", "imports_s", "peak_MB",
          "gap_pct", "unmet_kwh", "lp_unmet_kwh", "solves")
NOW = DAY_START.strftime("%Y-%m-%dT%H:%M:%SZ")


def _timed(started: float) -> tuple[float, float]:
    now = time.perf_counter()
    return now - started, now


def run(n: int, budget_s: float = 60.0, untargeted: float = 0.0) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "request.json"
        path.write_text(make_request(n, untargeted=untargeted).model_dump_json(exclude_none=True))
        row: dict[str, float] = {"N": n}
        _, bare_before = bare_solve(build_model(build_problem(load_request(path), DAY_START,
                                                              PlanOptions())), budget_s)
        with no_cyclic_gc():  # as the command does
            started = time.perf_counter()
            request = load_request(path)
            row["parse_s"], mark = _timed(started)
            problem = build_problem(request, DAY_START, PlanOptions())
            row["problem_s"], mark = _timed(mark)
            plan, report = optimise_with_report(problem, time_budget_s=budget_s)
            assert report is not None, plan.notes
            row["optimise_s"], mark = _timed(mark)
            with open(Path(folder) / "limits.json", "w") as out:  # as the command prints it
                write_enforced_limits(plan, DAY_START + timedelta(seconds=60), 60, out)
            row["write_s"], end = _timed(mark)
        row["e2e_s"] = end - started
        row.update(_stages(row.pop("optimise_s"), report))
        model = build_model(problem)
        row["bare_s"] = min(bare_before, bare_solve(model, budget_s)[1])
        row["ratio"] = row["e2e_s"] / row["bare_s"]
        bare_started = time.perf_counter()
        solve(model, model.lower, model.upper, budget_s)
        row["ours_s"] = time.perf_counter() - bare_started
        bare_started = time.perf_counter()  # the same, through OR-Tools' model builder
        Solver(model, warm=False).solve(model.lower, model.upper, budget_s)
        row["ortools_s"] = time.perf_counter() - bare_started
        row.update(_process(path))
        need = [t.energy_kwh or 0.0 if t else 0.0 for t in problem.targets]
        row["gap_pct"] = 100 * report.gap
        row["unmet_kwh"] = float(plan.shortfall_kwh().sum())
        row["lp_unmet_kwh"] = float(sum(max(0.0, a - b) for a, b in zip(need, report.lp_kwh,
                                                                           strict=True)))
        row["solves"] = report.solves
    return row


def _stages(optimise_s: float, report: PlanReport) -> dict[str, float]:
    """The optimiser's time split: the model, the LP, the repair, and the rest of the plan."""
    return {"model_s": report.build_s, "lp_s": report.lp_s,
            "repair_s": report.solve_s - report.lp_s,
            "rest_s": optimise_s - report.build_s - report.solve_s}


def _process(path: Path) -> dict[str, float]:
    """``energytree plan`` in a fresh interpreter: wall time, peak memory, import time."""
    command = [sys.executable, "-m", "energytree", "plan", str(path), "--now", NOW,
               "--time-budget", "60"]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    process_s = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import energytree.app.cli, optimizer"], check=True)
    return {"process_s": process_s, "imports_s": time.perf_counter() - started,
            "peak_MB": peak_kb / 1024}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.endtoend")
    parser.add_argument("sizes", nargs="*", type=int, default=[10, 100, 1000])
    parser.add_argument("--untargeted", type=float, default=0.0,
                        help="share of the cars without a target (0 to 1)")
    args = parser.parse_args(argv)
    print(" ".join(f"{h:>12}" for h in HEADER))
    for n in args.sizes:
        row = run(n, untargeted=args.untargeted)
        print(" ".join(f"{row[h]:>12.4f}" if isinstance(row[h], float) else f"{row[h]!s:>12}"
                       for h in HEADER), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
