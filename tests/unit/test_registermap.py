"""Register maps: loading and validation, pure decode/encode with reference numbers."""

from __future__ import annotations

import math
import shutil
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.meter.registermap import (
    MeterReading,
    Quantity,
    RegisterMap,
    ValueSpec,
    available_maps,
    decode,
    encode,
    load_register_map,
    read_plan,
    register_count,
    sunspec_register_map,
)
from energytree.errors import ConfigError, MeterError

SHIPPED = ["carlogavazzi-em24", "eastron-sdm630", "socomec-countis-e27", "sunspec"]
CURRENTS_ONLY = {
    "current_l1": {"address": 0, "type": "uint16"},
    "current_l2": {"address": 1, "type": "uint16"},
    "current_l3": {"address": 2, "type": "uint16"},
}


def blocks_from(rmap: RegisterMap, writes: dict[int, list[int]]) -> dict[int, list[int]]:
    """What a poll would read after a device stored ``writes``."""
    blocks = {}
    for block in read_plan(rmap):
        words = [0] * block.count
        for address, regs in writes.items():
            for i, word in enumerate(regs):
                if block.start <= address + i < block.start + block.count:
                    words[address + i - block.start] = word
        blocks[block.start] = words
    return blocks


def concrete_maps() -> list[RegisterMap]:
    """Every shipped map, SunSpec resolved to both of its models."""
    maps = [load_register_map(name) for name in SHIPPED if name != "sunspec"]
    sunspec = load_register_map("sunspec")
    resolved = [sunspec_register_map(model, 40070, sunspec) for model in (213, 203)]
    return [*maps, *resolved]


# --- loading ------------------------------------------------------------------------------


def test_shipped_maps_are_listed_and_load() -> None:
    assert available_maps() == SHIPPED
    for name in SHIPPED:
        rmap = load_register_map(name)
        assert rmap.sunspec or {Quantity.CURRENT_L1, Quantity.CURRENT_L2,
                                Quantity.CURRENT_L3} <= rmap.values.keys()


def test_socomec_defaults_and_single_block() -> None:
    rmap = load_register_map("socomec-countis-e27")
    assert (rmap.defaults.unit, rmap.defaults.port, rmap.defaults.function) == (5, 502, "holding")
    assert [(b.start, b.count) for b in read_plan(rmap)] == [(0xC558, 36)]


def test_a_path_works_like_a_shipped_name(tmp_path: Path) -> None:
    source = resources.files("adapters.meter") / "maps" / "socomec-countis-e27.yaml"
    copy = tmp_path / "my-meter.yaml"
    with resources.as_file(source) as path:
        shutil.copy(path, copy)
    assert load_register_map(copy) == load_register_map("socomec-countis-e27")
    assert load_register_map(str(copy)) == load_register_map("socomec-countis-e27")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("name: x\nvalues:\n  current_l4: {address: 0}\n", "values.current_l4",
                     id="unknown-quantity"),
        pytest.param("name: x\nvalues:\n  current_l1: {address: 0}\n", "current_l2, current_l3",
                     id="missing-currents"),
        pytest.param("name: x\nvalues: {current_l1: {address: 0, type: int24}}\n", "type",
                     id="bad-type"),
        pytest.param("name: x\nvalues: {current_l1: {address: 0, scale: 0}}\n", "scale",
                     id="zero-scale"),
        pytest.param("name: x\nvalues: {current_l1: {address: 70000}}\n", "address",
                     id="address-out-of-range"),
        pytest.param("name: x\nvalues: {current_l1: {address: 0, offset: 3}}\n", "offset",
                     id="unknown-field"),
        pytest.param("name: x\nsunspec: [213]\nvalues: {current_l1: {address: 0}}\n", "sunspec",
                     id="sunspec-and-values"),
        pytest.param("name: x\nsunspec: [201]\n", "sunspec", id="unsupported-sunspec-model"),
        pytest.param("name: x\nvalues: [1, 2\n", "not valid YAML", id="broken-yaml"),
        pytest.param("- just\n- a list\n", "mapping", id="not-a-mapping"),
    ],
)
def test_invalid_map_names_file_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_register_map(path)
    assert "broken.yaml" in str(info.value)
    assert expected in str(info.value)


def test_partial_phase_group_is_rejected() -> None:
    values = {**CURRENTS_ONLY, "voltage_l1": {"address": 3}}
    with pytest.raises(ValueError, match="all three phases"):
        RegisterMap.model_validate({"name": "x", "values": values})


def test_value_outside_every_block_is_rejected() -> None:
    with pytest.raises(ValueError, match="outside every block"):
        RegisterMap.model_validate(
            {"name": "x", "blocks": [{"start": 0, "count": 2}], "values": CURRENTS_ONLY})


def test_unknown_shipped_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="socomec-countis-e27"):
        load_register_map("socomec-e99")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_register_map(tmp_path / "nope.yaml")


# --- read plan ----------------------------------------------------------------------------


def test_read_plan_merges_adjacent_values_only() -> None:
    values = {**CURRENTS_ONLY, "power": {"address": 10, "type": "float32"}}
    rmap = RegisterMap.model_validate({"name": "x", "values": values})
    assert [(b.start, b.count) for b in read_plan(rmap)] == [(0, 3), (10, 2)]


def test_read_plan_never_exceeds_125_registers() -> None:
    values = {f"current_l{i}": {"address": 100 * (i - 1), "type": "float64"} for i in (1, 2, 3)}
    values["power"] = {"address": 4, "type": "float64"}
    rmap = RegisterMap.model_validate({"name": "x", "values": values})
    assert all(b.count <= 125 for b in read_plan(rmap))


# --- decoding reference numbers -----------------------------------------------------------


def test_socomec_reference_registers() -> None:
    rmap = load_register_map("socomec-countis-e27")
    words = [0] * 36
    words[0:6] = [0, 23012, 0, 23100, 0, 22950]  # V1..V3 in V/100
    words[8:14] = [0, 12345, 0, 6000, 0, 0]  # I1..I3 in mA
    words[16:18] = [0xFFFF, 0xFF6A]  # P = -150 × 10 W
    words[24:30] = [0, 100, 0xFFFF, 0xFF9C, 0, 0]  # P1 = 1000 W, P2 = -1000 W
    reading = decode(rmap, {0xC558: words})
    assert reading.current_a == pytest.approx((12.345, 6.0, 0.0))
    assert reading.voltage_v == pytest.approx((230.12, 231.0, 229.5))
    assert reading.power_w == pytest.approx(-1500.0)
    assert reading.power_phase_w == pytest.approx((1000.0, -1000.0, 0.0))


def test_em24_reads_low_word_first() -> None:
    rmap = load_register_map("carlogavazzi-em24")
    writes = {0x0C: [0x86A0, 0x0001], 0x0E: [0, 0], 0x10: [0, 0]}  # 0x186A0 mA = 100 A
    writes |= {0x00: [2300, 0], 0x02: [2300, 0], 0x04: [2300, 0]}
    reading = decode(rmap, blocks_from(rmap, writes))
    assert reading.current_a[0] == pytest.approx(100.0)
    assert reading.voltage_v == pytest.approx((230.0, 230.0, 230.0))


def test_sunspec_213_power_sits_at_40098() -> None:
    rmap = sunspec_register_map(213, 40070, load_register_map("sunspec"))
    assert rmap.values[Quantity.POWER].address == 40098
    assert rmap.values[Quantity.CURRENT_L1].address == 40074


def test_sunspec_203_applies_scale_factors() -> None:
    rmap = sunspec_register_map(203, 40070, load_register_map("sunspec"))
    writes = encode(rmap, {"current_l1": 12.34, "current_l2": 0.0, "current_l3": 1.0,
                           "power": 4560.0}, sf_exponents={40076: -2, 40092: 1})
    assert writes[40073] == [1234] and writes[40076] == [0xFFFE]
    assert writes[40088] == [456] and writes[40092] == [1]
    reading = decode(rmap, blocks_from(rmap, writes | _voltages_203()))
    assert reading.current_a == pytest.approx((12.34, 0.0, 1.0))
    assert reading.power_w == pytest.approx(4560.0)


def _voltages_203() -> dict[int, list[int]]:
    return {40078: [2300], 40079: [2300], 40080: [2300], 40085: [0xFFFF]}  # 230.0 V, V_SF = -1


def test_invert_flips_power_and_swaps_energies() -> None:
    rmap = load_register_map("eastron-sdm630")
    quantities = {"current_l1": 1.0, "current_l2": 2.0, "current_l3": 3.0, "voltage_l1": 230.0,
                  "voltage_l2": 230.0, "voltage_l3": 230.0, "power": 1380.0, "power_l1": 230.0,
                  "power_l2": 460.0, "power_l3": 690.0, "energy_import": 5000.0,
                  "energy_export": 1000.0, "frequency": 50.0}
    blocks = blocks_from(rmap, encode(rmap, quantities))
    plain, inverted = decode(rmap, blocks), decode(rmap, blocks, invert=True)
    assert inverted.power_w == -plain.power_w  # type: ignore[operator]
    assert inverted.power_phase_w == (-230.0, -460.0, -690.0)
    assert (inverted.energy_import_wh, inverted.energy_export_wh) == (1000.0, 5000.0)
    assert inverted.current_a == plain.current_a


# --- plausibility -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantities", "message"),
    [
        pytest.param({"current_l1": math.nan}, "implausible current_l1: nan", id="nan"),
        pytest.param({"current_l2": math.inf}, "implausible current_l2: inf", id="inf"),
        pytest.param({"current_l3": -1500.0}, "exceeds", id="too-large"),
        pytest.param({"voltage_l1": 0.0, "voltage_l2": 0.0, "voltage_l3": 0.0}, "0 V",
                     id="zero-voltages"),
    ],
)
def test_implausible_values_raise_meter_error(quantities: dict[str, float], message: str) -> None:
    rmap = load_register_map("eastron-sdm630")
    good = {"current_l1": 5.0, "current_l2": 5.0, "current_l3": 5.0,
            "voltage_l1": 230.0, "voltage_l2": 230.0, "voltage_l3": 230.0}
    blocks = blocks_from(rmap, encode(rmap, good | quantities))
    with pytest.raises(MeterError, match=message):
        decode(rmap, blocks)


def test_nan_in_integer_register_is_implausible() -> None:
    rmap = load_register_map("socomec-countis-e27")
    blocks = blocks_from(rmap, encode(rmap, {"current_l1": math.nan, "current_l2": 1.0,
                                             "current_l3": 1.0, "voltage_l1": 230.0,
                                             "voltage_l2": 230.0, "voltage_l3": 230.0}))
    with pytest.raises(MeterError, match="implausible current_l1"):
        decode(rmap, blocks)


def test_configured_current_limit_applies() -> None:
    rmap = RegisterMap.model_validate({"name": "x", "values": CURRENTS_ONLY})
    with pytest.raises(MeterError, match="±50 A"):
        decode(rmap, {0: [60, 0, 0]}, max_current_a=50.0)


def test_register_missing_from_the_read_is_a_meter_error() -> None:
    rmap = RegisterMap.model_validate({"name": "x", "values": CURRENTS_ONLY})
    with pytest.raises(MeterError, match="not read"):
        decode(rmap, {0: [1, 2]})


# --- round trips --------------------------------------------------------------------------

phase_current = st.floats(min_value=0, max_value=300)
phase_voltage = st.floats(min_value=180, max_value=260)


@pytest.mark.parametrize("rmap", concrete_maps(), ids=lambda m: m.name)
@settings(max_examples=60, deadline=None)
@given(currents=st.tuples(phase_current, phase_current, phase_current),
       voltage=phase_voltage, power_w=st.floats(min_value=-200_000, max_value=200_000),
       energy_wh=st.floats(min_value=0, max_value=1e7))
def test_encode_decode_round_trip_for_every_shipped_map(
    rmap: RegisterMap, currents: tuple[float, float, float], voltage: float, power_w: float,
    energy_wh: float,
) -> None:
    quantities = {"current_l1": currents[0], "current_l2": currents[1], "current_l3": currents[2],
                  "voltage_l1": voltage, "voltage_l2": voltage, "voltage_l3": voltage,
                  "power": power_w, "power_l1": power_w / 3, "power_l2": power_w / 3,
                  "power_l3": power_w / 3, "energy_import": energy_wh, "energy_export": energy_wh,
                  "frequency": 50.0}
    exponents = _exponents_203(rmap)
    reading = decode(rmap, blocks_from(rmap, encode(rmap, quantities, sf_exponents=exponents)))
    for quantity, spec in rmap.values.items():
        expected = quantities[quantity.value]
        if spec.type.startswith("float"):
            tolerance = abs(expected) * 1e-6 + 1e-9  # float32 keeps ~7 digits
        else:  # integers round to the nearest step
            tolerance = abs(spec.scale) * 10.0 ** exponents.get(spec.sf_address or -1, 0) / 2
        assert _field(reading, quantity) == pytest.approx(expected, abs=tolerance * 1.0001)


def _exponents_203(rmap: RegisterMap) -> dict[int, int]:
    """Scale factors that keep the test's ranges inside int16."""
    base = 40070
    return {base + 6: -2, base + 15: -1, base + 17: -2, base + 22: 1, base + 54: 1} \
        if rmap.values[Quantity.CURRENT_L1].sf_address else {}


def _field(reading: MeterReading, quantity: Quantity) -> float | None:
    name = quantity.value
    if name.startswith(("current_", "voltage_", "power_l")):
        triple = {"current": reading.current_a, "voltage": reading.voltage_v,
                  "power": reading.power_phase_w}[name.split("_")[0]]
        assert triple is not None
        return triple[int(name[-1]) - 1]
    return {"power": reading.power_w, "energy_import": reading.energy_import_wh,
            "energy_export": reading.energy_export_wh, "frequency": reading.frequency_hz}[name]


RAW_TYPES = ["int16", "uint16", "int32", "uint32", "int64", "uint64"]


@pytest.mark.parametrize("word_order", ["big", "little"])
@pytest.mark.parametrize("register_type", RAW_TYPES)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_integer_types_round_trip_exactly(register_type: str, word_order: str,
                                          data: st.DataObject) -> None:
    bits = register_count(register_type) * 16
    signed = not register_type.startswith("u")
    low = -(2 ** (bits - 1)) if signed else 0
    high = min(2 ** (bits - 1) - 1 if signed else 2**bits - 1, 2**53)  # exact in a float
    raw = data.draw(st.integers(min_value=max(low, -(2**53)), max_value=high))
    rmap = _single_value_map(register_type, word_order)
    reading = decode(rmap, blocks_from(rmap, encode(rmap, {"current_l1": float(raw)})),
                     max_current_a=math.inf)
    assert reading.current_a[0] == raw


@pytest.mark.parametrize("word_order", ["big", "little"])
@pytest.mark.parametrize("register_type", ["float32", "float64"])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_float_types_round_trip_exactly(register_type: str, word_order: str,
                                        data: st.DataObject) -> None:
    width = 32 if register_type == "float32" else 64
    value = data.draw(st.floats(width=width, allow_nan=False, allow_infinity=False))
    rmap = _single_value_map(register_type, word_order)
    reading = decode(rmap, blocks_from(rmap, encode(rmap, {"current_l1": value})),
                     max_current_a=math.inf)
    assert reading.current_a[0] == value


def _single_value_map(register_type: str, word_order: str) -> RegisterMap:
    spec = ValueSpec(address=10, type=register_type, word_order=word_order)  # type: ignore[arg-type]
    others = {Quantity.CURRENT_L2: ValueSpec(address=0), Quantity.CURRENT_L3: ValueSpec(address=1)}
    return RegisterMap(name="one value", values={Quantity.CURRENT_L1: spec, **others})
