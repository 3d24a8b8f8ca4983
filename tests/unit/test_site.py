"""The site file: YAML → SiteConfig → EnergyFlowRequest, with line-numbered errors."""

from __future__ import annotations

import numpy as np
import pytest

from energytree.errors import ConfigError
from energytree.plan import instant_plan
from energytree.site import SiteConfig, evse_configs, site_request
from energytree.tree import Tree
from energytree.yamlfile import load_model, parse_model
from tests.builders import EXAMPLES, NOW, problem
from tests.oracle import check_slot

NESTED = """\
name: Test
grid:
  uuid: grid
  max_current_A: 63
  max_power_W: 40000
  children:
    - fuse: hall
      max_current_A: 32
      children:
        - evse: a
          max_current_A: 16
        - fuse: bay
          max_current_A: 20
          children:
            - evse: b
              max_current_A: 32
              phases: 1
              phase_rotation: L3L1L2
    - evse: c
      phase_switching: true
      min_current_A: 8
      conversion_efficiency: 0.9
      battery_kWh: 60
      target: {car_battery_soc: 20, leave_time: "2026-11-24T07:00:00Z"}
"""


def _site(text: str = NESTED) -> SiteConfig:
    return parse_model(text, SiteConfig, "site.yaml")


def test_nested_fuses_become_the_request_tree() -> None:
    tree = Tree.from_request(site_request(_site(), NOW))
    assert [n.uuid for n in tree] == ["grid", "hall", "a", "bay", "b", "c"]
    assert [e.uuid for e in tree.evses] == ["a", "b", "c"]
    grid = tree.root.request.schedule_import[0]
    assert grid.timestamp == NOW
    assert grid.limits_to_root.ac_max_current_A == 63
    assert grid.limits_to_root.total_power_W == 40000


def test_single_phase_evse_with_rotation() -> None:
    b = Tree.from_request(site_request(_site(), NOW)).node("b").request
    assert b.phase_rotation == "L3L1L2"
    root = b.schedule_import[0].limits_to_root
    assert root.ac_max_phase_count == 1 and root.ac_min_phase_count == 1
    assert root.ac_min_current_A == 6.0, "default minimum"


def test_switching_evse_and_its_target() -> None:
    c = Tree.from_request(site_request(_site(), NOW)).node("c").request
    entry = c.schedule_import[0]
    assert entry.limits_to_root.ac_supports_changing_phases_during_charging is True
    assert entry.limits_to_root.ac_min_phase_count == 1
    assert entry.limits_to_root.ac_max_current_A == 16.0, "default maximum"
    assert entry.conversion_efficiency == 0.9
    assert c.optimizer_target.car_battery_capacity_kWh == 60, "battery_kWh fills the target"


def test_export_is_closed_by_default() -> None:
    a = Tree.from_request(site_request(_site(), NOW)).node("a").request
    assert a.schedule_export[0].limits_to_root.ac_max_current_A == 0


def test_site_plans_with_per_phase_accounting() -> None:
    plan = instant_plan(problem(site_request(_site(), NOW)))
    # a and c share hall/grid on L1..L3; b sits alone on L3 behind its 20 A bay
    assert plan.current_a[:, 0].tolist() == pytest.approx([16, 16, 16])
    assert plan.phases[:, 0].tolist() == [3, 1, 3]


def test_evse_configs_in_tree_order() -> None:
    assert [e.evse for e in evse_configs(_site())] == ["a", "b", "c"]


def test_formulas_need_a_resolver() -> None:
    site = _site(NESTED.replace("max_power_W: 40000", "max_power_W: 55000 * CM.AVAIL / 100"))
    with pytest.raises(ConfigError, match=r"node grid\.max_power_W"):
        site_request(site, NOW)
    request = site_request(site, NOW, resolve=lambda formula: 27_500.0)
    assert request.schedule_import[0].limits_to_root.total_power_W == 27_500


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(("          max_current_A: 16\n", "          max_curent_A: 16\n"),
                     "site.yaml:11: grid.children.0.fuse.children.0.evse.max_curent_A: "
                     "Extra inputs are not permitted", id="unknown key in an EVSE"),
        pytest.param(("              phases: 1\n", "              phases: 4\n"),
                     "site.yaml:17: grid.children.0.fuse.children.1.fuse.children.0.evse."
                     "phases: Input should be less than or equal to 3", id="bad value"),
        pytest.param(("    - evse: c\n", "    - charger: c\n"),
                     "site.yaml:19: grid.children.1: each child needs an 'evse: <uuid>' or a "
                     "'fuse: <uuid>' key", id="neither evse nor fuse"),
        pytest.param(("  max_current_A: 63\n", "  max_current_A: 63\n  fuse_A: 1\n"),
                     "site.yaml:5: grid.fuse_A: Extra inputs are not permitted",
                     id="unknown key in grid"),
        pytest.param(("      min_current_A: 8\n", "      min_current_A: .nan\n"),
                     "site.yaml:21: grid.children.1.evse.min_current_A: Input should be a "
                     "finite number", id="NaN"),
    ],
)
def test_errors_carry_line_numbers(change, message) -> None:
    old, new = change
    assert old in NESTED
    with pytest.raises(ConfigError) as info:
        _site(NESTED.replace(old, new))
    assert message in str(info.value).splitlines()


def test_yaml_syntax_error_has_line_and_column() -> None:
    with pytest.raises(ConfigError, match=r"^site.yaml:2:10: not valid YAML: mapping values"):
        _site("grid:\n  uuid: a: b\n")


def test_empty_and_missing_files(tmp_path) -> None:
    with pytest.raises(ConfigError, match="empty"):
        _site("")
    with pytest.raises(ConfigError, match="cannot read"):
        load_model(tmp_path / "nope.yaml", SiteConfig)
    with pytest.raises(ConfigError, match=r"grid: Field required"):
        _site("name: x\n")


@pytest.mark.parametrize("name", ["home.yaml", "small-business.yaml", "depot.yaml", "office.yaml"])
def test_examples_load_and_plan(name) -> None:
    site = load_model(EXAMPLES / name, SiteConfig)
    plan = instant_plan(problem(site_request(site, NOW)))
    assert plan.current_a.shape[0] == len(evse_configs(site))


def test_depot_plan_keeps_every_limit_and_wastes_nothing() -> None:
    """The 120-EVSE depot: the instant plan checked slot by slot by the independent oracle."""
    site = load_model(EXAMPLES / "depot.yaml", SiteConfig)
    request = site_request(site, NOW)
    prob = problem(request, horizon_hours=6)
    plan = instant_plan(prob)
    assert prob.evse_count == 120
    has_target = np.array([t is not None for t in prob.targets])
    for slot in range(prob.slots):
        check_slot(request, prob.grid.start_time(slot), plan.current_a[:, slot],
                   plan.phases[:, slot], capped=has_target)
    # 800 kW contracted: the grid connection binds in the first slot
    assert plan.power_w[:, 0].sum() == pytest.approx(800_000, rel=1e-6)


FORMULA_SITE = """name: formulas
grid:
  uuid: g
  max_current_A: 35
  max_power_W: "{power}"
  children:
    - evse: a
      charging_rule: "{rule}"
"""


@pytest.mark.parametrize(("power", "rule", "where"), [
    ("55000 * / 100", "6000", "site.yaml:5: grid.max_power_W: formula '55000 * / 100': "
     "expected a number, name or '(' but found '/' at position 8"),
    ("10^400", "6000", "site.yaml:5: grid.max_power_W: formula '10^400': result of '^' is too "
     "large at position 2"),
    ("22000", "1/0", "site.yaml:8: grid.children.0.evse.charging_rule: formula '1/0': division "
     "by zero at position 1"),
])
def test_formula_errors_name_file_line_and_field(power, rule, where):
    with pytest.raises(ConfigError) as caught:
        parse_model(FORMULA_SITE.format(power=power, rule=rule), SiteConfig, "site.yaml")
    assert str(caught.value).splitlines()[0] == where


def test_formulas_that_read_live_values_load():
    text = FORMULA_SITE.format(power="55000 * CM.AVAIL / 100", rule="CM.TARIF == 1 ? 16000 : 0")
    site = parse_model(text, SiteConfig, "site.yaml")
    assert site.grid.max_power_W == "55000 * CM.AVAIL / 100"
