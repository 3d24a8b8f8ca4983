"""build_problem: a request (plus external limits and prices) as arrays on a slot grid."""

from __future__ import annotations

import numpy as np
import pytest

from energytree.errors import NotFoundError, RequestError
from energytree.problem import ExternalSource, with_car_phases
from energytree.types import (
    ExternalLimits,
    FrequencyWattPoint,
    OptimizerTarget,
    Powermeter,
    PricePerKwh,
)
from tests.builders import NOW, at, entry, evse, node, problem, setpoint


def test_a_request_without_evse_is_rejected() -> None:
    with pytest.raises(RequestError, match="no EVSE"):
        problem(node("grid", node("empty"), max_a=32))


def test_an_evse_without_any_finite_limit_is_rejected() -> None:
    with pytest.raises(RequestError, match="'a': no finite"):
        problem(node("grid", evse("a", max_a=None)))
    problem(node("grid", evse("a", max_a=None), max_a=32))  # the fuse above is enough
    problem(node("grid", evse("a", max_a=None, power_w=11_000)))


def test_caps_are_stacked_per_node_and_per_evse() -> None:
    prob = problem(node("grid", node("sub", evse("a", 16), per_phase=[10, 20, 30]), max_a=32,
                        power_w=20_000))
    assert prob.evse_count == 1 and prob.slots == 4
    assert [n.uuid for n in prob.inner] == ["grid", "sub"]
    assert prob.node_cap_a[0][:, 0].tolist() == [[32, 32, 32], [10, 20, 30]]
    assert prob.node_cap_w[0][:, 0].tolist() == [20_000, np.inf]
    assert prob.evse_cap_a[0][0].tolist() == [16] * 4
    assert prob.node_cap_a[1][0, 0].tolist() == [0, 0, 0], "no export schedule: no export"
    assert prob.inner_paths[0].tolist() == [0, 1]


def test_minimum_current_and_phase_counts_follow_the_path() -> None:
    sub = node("sub", evse("a", 16, min_a=6, switchable=True),
               schedule=[entry(max_a=32, min_a=8, ac_max_phase_count=1)])
    prob = problem(node("grid", sub, evse("b", min_a=6), max_a=63))
    assert prob.min_current_a[:, 0].tolist() == [8, 6]
    assert prob.max_phases[:, 0].tolist() == [1, 3]
    assert prob.min_phases[:, 0].tolist() == [1, 3], "min phases never exceed max phases"


def test_an_evse_that_cannot_switch_keeps_the_phases_it_is_wired_for() -> None:
    """A 1-phase limit above a 3-phase EVSE that cannot switch does not make it draw on one."""
    sub = node("sub", evse("a", 16), evse("b", 16, phases=1),
               schedule=[entry(max_a=32, ac_max_phase_count=1)])
    prob = problem(node("grid", sub, max_a=63))
    assert prob.max_phases[:, 0].tolist() == [3, 1]
    assert prob.min_phases[:, 0].tolist() == [3, 1]


def test_a_car_on_fewer_phases_is_budgeted_on_its_grid_phases() -> None:
    prob = problem(node("grid", evse("a", rotation="L2L3L1", switchable=True), evse("b"),
                        max_a=63))
    seen = with_car_phases(prob, {0: (1,), 1: (0, 2)})
    assert seen.phase_map[:, :2].tolist() == [[2, 1], [0, 2]]
    assert seen.max_phases[:, 0].tolist() == [1, 2]
    assert seen.min_phases[:, 0].tolist() == [1, 2]
    assert prob.max_phases[:, 0].tolist() == [3, 3], "the original is unchanged"


@pytest.mark.parametrize(
    ("rotation", "phase_map"),
    [(None, [0, 1, 2]), ("L2L3L1", [1, 2, 0]), ("L3L2L1", [2, 1, 0])],
)
def test_phase_rotation(rotation, phase_map) -> None:
    prob = problem(node("grid", evse("a", rotation=rotation), max_a=32))
    assert prob.phase_map[0].tolist() == phase_map


@pytest.mark.parametrize(
    ("state", "wants"),
    [("Charging", True), (None, True), ("PausedEV", True), ("Unplugged", False),
     ("Finished", False), ("Disabled", False), ("WaitForAuth", False)],
)
def test_which_states_want_power(state, wants) -> None:
    assert problem(node("grid", evse("a", state=state), max_a=32)).wants_power[0] == wants


def test_switchable() -> None:
    prob = problem(node("grid", evse("a", switchable=True), evse("b"), max_a=32))
    assert prob.switchable.tolist() == [True, False]


def test_efficiency_follows_the_evse_schedule_even_unsorted() -> None:
    schedule = [entry(at(30), 16, efficiency=0.9), entry(at(0), 16, efficiency=0.95)]
    prob = problem(node("grid", evse("a", schedule=schedule), max_a=32))
    assert prob.efficiency[0].tolist() == [0.95, 0.95, 0.9, 0.9]


def test_external_limits_combine_by_minimum_and_keep_their_source() -> None:
    operator = ExternalSource("operator", "grid",
                              ExternalLimits(schedule_import=[entry(at(30), 20)]))
    ocpp = ExternalSource("ocpp", "grid", ExternalLimits(schedule_import=[entry(at(0), 25)]))
    silent = ExternalSource("api", "grid", ExternalLimits())
    prob = problem(node("grid", evse("a", 32), max_a=32), external=[operator, ocpp, silent])
    assert prob.node_cap_a[0][0, :, 0].tolist() == [20, 20, 20, 20]
    lim = prob.limits(prob.tree.root)
    assert lim.current_source[0, 0] == "grid/operator"


def test_external_limits_for_an_unknown_node_are_rejected() -> None:
    source = ExternalSource("operator", "nope", ExternalLimits())
    with pytest.raises(NotFoundError):
        problem(node("grid", evse("a"), max_a=32), external=[source])


@pytest.mark.parametrize(
    ("sp", "imp_a", "exp_a", "imp_w", "exp_w"),
    [
        pytest.param({"ac_current_A": 10}, 10, 0, np.inf, 50_000, id="+A: caps import"),
        pytest.param({"ac_current_A": -10}, 0, 10, np.inf, 50_000, id="-A: caps export"),
        pytest.param({"total_power_W": 4000}, 32, 16, 4000, 0, id="+W"),
        pytest.param({"total_power_W": -4000}, 32, 16, 0, 4000, id="-W"),
    ],
)
def test_setpoints_act_as_limits(sp, imp_a, exp_a, imp_w, exp_w) -> None:
    car = evse("v2g", 32, export=[entry(max_a=16, power_w=50_000)], setpoints=[setpoint(**sp)])
    prob = problem(node("grid", car, max_a=63))
    assert prob.evse_cap_a[0][0, 0] == imp_a
    assert prob.evse_cap_a[1][0, 0] == exp_a
    assert prob.evse_cap_w[0][0, 0] == imp_w
    assert prob.evse_cap_w[1][0, 0] == exp_w


def test_frequency_table_reads_the_nodes_meter() -> None:
    table = [FrequencyWattPoint(frequency_Hz=49.8, total_power_W=-7000),
             FrequencyWattPoint(frequency_Hz=50.2, total_power_W=7000)]
    meter = Powermeter.model_validate({"frequency_Hz": {"L1": 50.1}})
    grid = node("grid", evse("a", 32), max_a=63, setpoints=[setpoint(frequency_table=table)],
                energy_usage_root=meter)
    prob = problem(grid)
    assert prob.node_cap_w[0][0, 0] == pytest.approx(3500)
    assert prob.node_cap_w[1][0, 0] == 0


def test_prices_from_the_root_schedule_or_a_price_list() -> None:
    root = node("grid", evse("a"), schedule=[entry(at(0), 32, price=0.3),
                                             entry(at(30), 32, price=0.1)])
    assert problem(root).price_import.tolist() == [0.3, 0.3, 0.1, 0.1]
    prices = [PricePerKwh(timestamp=at(0), value=0.2), PricePerKwh(timestamp=at(10), value=0.5)]
    prob = problem(root, prices=prices)
    assert prob.grid.start_time(1) == at(10), "a price change is a slot boundary"
    assert prob.price_import.tolist() == [0.2, 0.5, 0.5, 0.5, 0.5]


@pytest.mark.parametrize(
    ("target", "energy", "deadline"),
    [
        pytest.param({"energy_amount_needed": 10}, 10, 4, id="energy, no leave time"),
        pytest.param({"energy_amount_needed": 10, "leave_time": at(30)}, 10, 2, id="leave"),
        pytest.param({"energy_amount_needed": 10, "leave_time": at(20)}, 10, 2,
                     id="leave time is a slot boundary"),
        pytest.param({"energy_amount_needed": 1, "leave_time": at(-30)}, 1, 4,
                     id="leave time passed"),
        pytest.param({"car_battery_soc": 40, "car_battery_capacity_kWh": 50,
                      "charge_to_max_percent": 80}, 20, 4, id="from SoC"),
        pytest.param({"car_battery_soc": 40, "car_battery_capacity_kWh": 50}, 30, 4,
                     id="from SoC to 100 %"),
    ],
)
def test_targets(target, energy, deadline) -> None:
    prob = problem(node("grid", evse("a", target=OptimizerTarget(**target)), max_a=32))
    assert prob.targets[0].energy_kwh == pytest.approx(energy)
    assert prob.targets[0].deadline_slot == deadline
    if "leave_time" in target and target["leave_time"] > NOW:
        assert prob.grid.start_time(deadline) == target["leave_time"]


def test_no_target_or_an_empty_one() -> None:
    prob = problem(node("grid", evse("a"), evse("b", target={"car_battery_soc": 30}), max_a=32))
    assert prob.targets == [None, None]


def test_price_limit_target() -> None:
    prob = problem(node("grid", evse("a", target={"price_limit": 0.2}), max_a=32))
    assert prob.targets[0].price_limit == 0.2 and prob.targets[0].energy_kwh is None
