"""The cFos SunSpec register map: layout, encoding and what a write means (no sockets)."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.sunspec.registers import (
    BASE_ADDRESS,
    FLAG_COUNT,
    GRID_POWER_ADDRESS,
    METER_ADDRESSES,
    METER_NAMES,
    PERCENT_ADDRESS,
    ExceptionCode,
    MeterValues,
    Parameter,
    Parameters,
    SetFlag,
    SetParameter,
    SetPercent,
    SetVariable,
    SunSpecValues,
    WriteRejected,
    build_image,
    decode_float,
    decode_write,
    encode_float,
    flag_address,
    image_size,
    model_addresses,
    parameter_address,
    published_variables,
    variable_value_address,
)
from energytree.errors import ConfigError, RequestError

IDENTITY = {"manufacturer": "energytree", "model": "site", "version": "0.1.0", "serial": "SN1"}
GRID = MeterValues(current_a=33.0, current_l1_a=11.0, voltage_l1_v=230.0, power_w=4321.5)
VALUES = SunSpecValues(
    grid=GRID,
    fault=MeterValues(power_w=0.0),
    parameters=Parameters(max_total_current_ma=63000.0, max_total_current_percent=60.0),
    flags=(True,) + (False,) * (FLAG_COUNT - 1),
    variables=(("AVAIL", 80.0), ("TARIF", 1.0)),
)
NAMES = ("AVAIL", "TARIF")
NAN = encode_float(math.nan)


def image_of(values: SunSpecValues = VALUES, **kwargs: object) -> list[int]:
    return build_image(values, **IDENTITY, unit_id=7, **kwargs)  # type: ignore[arg-type]


def at(image: list[int], address: int, count: int = 2) -> list[int]:
    return image[address - BASE_ADDRESS : address - BASE_ADDRESS + count]


def text_at(image: list[int], address: int, count: int) -> str:
    return struct.pack(f">{count}H", *at(image, address, count)).rstrip(b"\0").decode()


def walk_chain(image: list[int]) -> list[tuple[int, int]]:
    """What a SunSpec client does: follow ID/L from 40002 until 0xFFFF."""
    chain, address = [], BASE_ADDRESS + 2
    while True:
        model_id, length = at(image, address)
        chain.append((model_id, address))
        if model_id == 0xFFFF:
            return chain
        address += 2 + length


# --------------------------------------------------------------------------- layout


def test_the_two_registers_the_grid_operator_uses_are_where_cfos_has_them() -> None:
    assert GRID_POWER_ADDRESS == 40098
    assert PERCENT_ADDRESS == 40968


def test_model_chain_matches_cfos_start_address_list() -> None:
    assert model_addresses(2) == [
        (1, 40002),
        *[(213, a) for a in (40070, 40196, 40322, 40448, 40574, 40700, 40826)],
        (60000, 40952),
        (60001, 40970),
        (60002, 41004),
        (0xFFFF, 41050),
    ]


@pytest.mark.parametrize("variables", [(), (("a", 1.0),), (("AVAIL", 80.0), ("TARIF", 1.0))])
def test_walking_the_image_gives_the_documented_chain(variables: tuple) -> None:
    image = image_of(SunSpecValues(variables=variables))
    assert at(image, BASE_ADDRESS) == [0x5375, 0x6E53]  # "SunS"
    assert walk_chain(image) == model_addresses(len(variables))
    assert len(image) == image_size(len(variables))
    assert at(image, model_addresses(len(variables))[-1][1]) == [0xFFFF, 0]


def test_common_model_names_the_device_and_its_unit_id() -> None:
    image = image_of()
    assert at(image, 40002) == [1, 66]
    assert text_at(image, 40004, 16) == "energytree"
    assert text_at(image, 40020, 16) == "site"
    assert text_at(image, 40036, 8) == ""
    assert text_at(image, 40044, 8) == "0.1.0"
    assert text_at(image, 40052, 16) == "SN1"
    assert at(image, 40068) == [7, 0x8000]  # DA, Pad


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        pytest.param(40072, 33.0, id="A"),
        pytest.param(40074, 11.0, id="AphA"),
        pytest.param(40084, None, id="PhVphB-unknown"),
        pytest.param(40082, 230.0, id="PhVphA"),
        pytest.param(40098, 4321.5, id="W"),
        pytest.param(40122, None, id="PF-never-published"),
        pytest.param(40826 + 28, 0.0, id="fault-W"),
        pytest.param(40196 + 28, None, id="consumers-W-unknown"),
    ],
)
def test_meter_points_are_float32_and_nan_when_unknown(
    address: int, expected: float | None
) -> None:
    registers = at(image_of(), address)
    if expected is None:
        assert registers == NAN == [0x7FC0, 0x0000]
    else:
        assert decode_float(registers) == expected


def test_each_meter_block_is_ac_meter_213_with_evt_zero() -> None:
    image = image_of()
    for address in METER_ADDRESSES:
        assert at(image, address) == [213, 124]
        assert at(image, address + 124) == [0, 0]
    assert len(METER_NAMES) == len(METER_ADDRESSES) == 7


def test_parameters_flags_and_variables() -> None:
    image = image_of()
    assert at(image, 40952) == [60000, 16]
    assert decode_float(at(image, parameter_address(Parameter.MAX_TOTAL_CURRENT_MA))) == 63000.0
    assert at(image, parameter_address(Parameter.LOAD_MANAGEMENT_ACTIVE)) == NAN
    assert decode_float(at(image, 40968)) == 60.0
    assert at(image, 40970) == [60001, 32]
    assert at(image, flag_address(1), FLAG_COUNT) == [1] + [0] * 31
    assert at(image, 41004) == [60002, 44]
    assert text_at(image, 41006, 20) == "AVAIL"
    assert decode_float(at(image, variable_value_address(0))) == 80.0
    assert text_at(image, 41028, 20) == "TARIF"
    assert decode_float(at(image, variable_value_address(1))) == 1.0


def test_switches_publish_as_one_and_zero() -> None:
    values = SunSpecValues(
        parameters=Parameters(load_management_active=True, add_home_to_imbalance=False)
    )
    image = image_of(values)
    assert decode_float(at(image, parameter_address(Parameter.LOAD_MANAGEMENT_ACTIVE))) == 1.0
    assert decode_float(at(image, parameter_address(Parameter.ADD_HOME_TO_IMBALANCE))) == 0.0


def test_names_that_do_not_fit_40_bytes_are_not_published_and_the_count_is_capped() -> None:
    variables = (("x" * 40, 1.0), ("y" * 41, 2.0), ("ä" * 21, 3.0), ("", 4.0), ("z", 5.0))
    assert published_variables(variables) == (("x" * 40, 1.0), ("z", 5.0))
    assert published_variables(variables, max_variables=1) == (("x" * 40, 1.0),)
    image = image_of(SunSpecValues(variables=variables), max_variables=1)
    assert walk_chain(image) == model_addresses(1)


def test_floats_beyond_float32_range_saturate_to_infinity() -> None:
    assert decode_float(encode_float(1e39)) == math.inf
    assert decode_float(encode_float(-1e39)) == -math.inf
    assert decode_float(encode_float(4321.5)) == 4321.5


def test_identity_that_does_not_fit_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        build_image(VALUES, **{**IDENTITY, "manufacturer": "m" * 33}, unit_id=1)
    with pytest.raises(ConfigError):
        build_image(VALUES, **IDENTITY, unit_id=0)


def test_flags_need_all_32() -> None:
    with pytest.raises(ValueError, match="32"):
        SunSpecValues(flags=(True,))


# --------------------------------------------------------------------------- writes


def write(address: int, registers: list[int], **kwargs: object) -> object:
    return decode_write(address, registers, variable_names=NAMES, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("address", "registers", "expected"),
    [
        pytest.param(40968, encode_float(40.0), SetPercent(40.0), id="percent-40"),
        pytest.param(40968, encode_float(0.0), SetPercent(0.0), id="percent-0"),
        pytest.param(40968, encode_float(100.0), SetPercent(100.0), id="percent-100"),
        pytest.param(40968, encode_float(-0.0), SetPercent(0.0), id="percent-minus-zero"),
        pytest.param(40972, [1], SetFlag(1, True), id="flag1-on"),
        pytest.param(41003, [0], SetFlag(32, False), id="flag32-off"),
        pytest.param(41026, encode_float(55.5), SetVariable("AVAIL", 55.5), id="variable-1"),
        pytest.param(41048, encode_float(-2.0), SetVariable("TARIF", -2.0), id="variable-2"),
    ],
)
def test_accepted_writes(address: int, registers: list[int], expected: object) -> None:
    assert write(address, registers) == expected


@pytest.mark.parametrize(
    ("address", "registers", "code"),
    [
        pytest.param(40968, encode_float(math.nan), 3, id="percent-nan"),
        pytest.param(40968, encode_float(math.inf), 3, id="percent-inf"),
        pytest.param(40968, encode_float(-math.inf), 3, id="percent-minus-inf"),
        pytest.param(40968, encode_float(150.0), 3, id="percent-150"),
        pytest.param(40968, encode_float(-1.0), 3, id="percent-minus-1"),
        pytest.param(40968, encode_float(100.01), 3, id="percent-just-above-100"),
        pytest.param(40968, [0x4220], 2, id="fc6-high-half-of-percent"),
        pytest.param(40969, [0], 2, id="fc6-low-half-of-percent"),
        pytest.param(40967, [0, 0x4220], 2, id="overlaps-previous-point"),
        pytest.param(40968, [*encode_float(40.0), 1], 2, id="percent-plus-next-model"),
        pytest.param(40098, encode_float(1.0), 2, id="grid-power-read-only"),
        pytest.param(40000, [0x5375, 0x6E53], 2, id="suns-marker"),
        pytest.param(40068, [2], 2, id="common-DA"),
        pytest.param(40952, [60000], 2, id="model-id"),
        pytest.param(40953, [17], 2, id="model-length"),
        pytest.param(40954, encode_float(32000.0), 2, id="parameter-not-enabled"),
        pytest.param(40972, [2], 3, id="flag-value-2"),
        pytest.param(40972, [1, 1], 2, id="two-flags-at-once"),
        pytest.param(41006, [0x4142], 2, id="variable-name"),
        pytest.param(41070, encode_float(1.0), 2, id="variable-that-is-not-published"),
        pytest.param(41026, encode_float(math.nan), 3, id="variable-nan"),
        pytest.param(41050, [0xFFFF], 2, id="end-model"),
        pytest.param(41048, [0x4000], 2, id="fc6-half-of-variable"),
        pytest.param(40968, [], 3, id="no-registers"),
        pytest.param(40972, [0x10000], 3, id="register-out-of-range"),
    ],
)
def test_rejected_writes_carry_their_modbus_code(
    address: int, registers: list[int], code: int
) -> None:
    with pytest.raises(WriteRejected) as info:
        write(address, registers)
    assert info.value.code == code
    assert isinstance(info.value, RequestError)


@pytest.mark.parametrize(
    ("parameter", "value", "outcome"),
    [
        pytest.param(Parameter.MAX_TOTAL_CURRENT_MA, 32000.0, 32000.0, id="max-current"),
        pytest.param(Parameter.MAX_PHASE_IMBALANCE_MA, 0.0, 0.0, id="imbalance-zero"),
        pytest.param(Parameter.POWER_RESERVE_MA, -1.0, 3, id="negative-current"),
        pytest.param(Parameter.LOAD_MANAGEMENT_ACTIVE, 1.0, 1.0, id="switch-on"),
        pytest.param(Parameter.ADD_HOME_TO_IMBALANCE, 0.5, 3, id="switch-half"),
        pytest.param(Parameter.OVERDRAW_MA, math.inf, 3, id="infinite"),
    ],
)
def test_enabled_parameters(parameter: Parameter, value: float, outcome: float | int) -> None:
    registers = encode_float(value)
    address = parameter_address(parameter)
    if isinstance(outcome, float):
        assert write(address, registers, writable_parameters={parameter}) == SetParameter(
            parameter, outcome
        )
    else:
        with pytest.raises(WriteRejected) as info:
            write(address, registers, writable_parameters={parameter})
        assert info.value.code == outcome


def test_the_percentage_needs_no_enabling_and_is_never_a_parameter_write() -> None:
    everything = set(Parameter)
    assert write(40968, encode_float(1.0), writable_parameters=everything) == SetPercent(1.0)


def test_every_published_writable_value_decodes_back_to_itself() -> None:
    """Consistency: writing back what the image holds asks for what is already there."""
    image = image_of()
    assert write(40968, at(image, 40968)) == SetPercent(60.0)
    for number in range(1, FLAG_COUNT + 1):
        assert write(flag_address(number), at(image, flag_address(number), 1)) == SetFlag(
            number, VALUES.flags[number - 1]
        )
    for index, (name, value) in enumerate(VALUES.variables):
        address = variable_value_address(index)
        assert write(address, at(image, address)) == SetVariable(name, value)


registers_16 = st.integers(min_value=0, max_value=0xFFFF)
any_register = st.integers(min_value=-5, max_value=0x10004)
near_writable = st.integers(min_value=40940, max_value=41080)


@given(
    address=st.one_of(st.integers(min_value=0, max_value=0xFFFF), near_writable),
    registers=st.one_of(
        st.lists(registers_16, max_size=125),
        st.lists(any_register, max_size=4),
        st.floats().map(encode_float),
    ),
    names=st.lists(st.text(max_size=45), max_size=4),
    enabled=st.sets(st.sampled_from(Parameter)),
)
def test_arbitrary_writes_give_a_write_or_the_documented_rejection(
    address: int, registers: list[int], names: list[str], enabled: set[Parameter]
) -> None:
    try:
        result = decode_write(address, registers, variable_names=names, writable_parameters=enabled)
    except WriteRejected as exc:
        assert exc.code in (ExceptionCode.ILLEGAL_ADDRESS, ExceptionCode.ILLEGAL_VALUE)
        return
    assert 1 <= len(registers) <= 2
    if isinstance(result, SetPercent):
        assert address == 40968 and 0.0 <= result.value <= 100.0
    elif isinstance(result, SetFlag):
        assert 1 <= result.number <= FLAG_COUNT and registers == [int(result.value)]
    elif isinstance(result, SetVariable | SetParameter):
        assert math.isfinite(result.value)
    if isinstance(result, SetParameter):
        assert result.parameter in enabled
