"""[[pool]]: a valid matrix and valid groups load with the banks they describe; every topology
that could join two EVSEs' buses is refused with a message naming where and why."""

from __future__ import annotations

import pytest

from csbridge.config import BankTopology, ConfigError, Policy, parse_config

STATION = """
[station]
sw_version = "1.0"
hw_version = "rev-a"

[[bus]]
name = "can0"
interface = "virtual"
"""


def _dc_evse(evse_id: str, modules: str = "") -> str:
    return f"""
[[evse]]
evse_id = "{evse_id}"
kind = "dc"
network_interface = "eth1"
connectors = [{{ id = 1, connector_type = "DC_extended" }}]

[evse.dc_limits]
max_current_a = 400
max_voltage_v = 1000
max_power_w = 180000
peak_current_ripple_a = 2
{modules}
"""


AC_EVSE = """
[[evse]]
evse_id = "AC1"
kind = "ac"
network_interface = "eth2"
nominal_voltage = 230
connectors = [{ id = 1, connector_type = "AC_three_phase_core" }]

[evse.ac_limits]
max_current_a = 32
"""

EVSES = _dc_evse("E1") + _dc_evse("E2")


def _module(name: str, address: int | None = None, table: str = "pool.module") -> str:
    if address is not None:
        return f"""
[[{table}]]
name = "{name}"
address = {address}
can = {{ profile = "infypower-reg", bus = "can0" }}
"""
    return f"""
[[{table}]]
name = "{name}"
simulated = {{ max_voltage_v = 1000, max_current_a = 100, max_power_w = 30000 }}
"""


def _contactor(bank: str, evse: str, kind: str = "module", tag: str = "") -> str:
    signal = f"K_{bank}_{evse}{tag}".replace("-", "_")
    return f"""
[[pool.contactor]]
evse = "{evse}"
{kind} = "{bank}"
command = "{signal}_CMD"
feedback = "{signal}_FB"
"""


def _pool(body: str, name: str = "cabinet", evses: tuple[str, ...] = ("E1", "E2")) -> str:
    terms = ", ".join(f'{{ evse_id = "{evse}" }}' for evse in evses)
    return f'\n[[pool]]\nname = "{name}"\nevse = [{terms}]\n' + body


MATRIX = _pool(
    "".join(_module(f"m{i}") for i in range(1, 4))
    + "".join(_contactor(f"m{i}", evse) for i in range(1, 4) for evse in ("E1", "E2"))
)

GROUPS = _pool(
    "".join(_module(f"m{i}") for i in range(1, 5))
    + """
[[pool.group]]
name = "bank_a"
modules = ["m1", "m2"]

[[pool.group]]
name = "bank_b"
modules = ["m3", "m4"]
"""
    + "".join(
        _contactor(bank, evse, "group") for bank in ("bank_a", "bank_b") for evse in ("E1", "E2")
    )
)


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "station.toml")
    # One validator's problems arrive joined by "; " under its key: one line per problem here.
    lines = []
    for problem in caught.value.problems:
        key, _, rest = problem.partition(": ")
        lines += [f"{key}: {part}" for part in rest.split("; ")]
    return lines


def test_a_station_without_pools_has_none() -> None:
    config = parse_config(STATION + EVSES)
    assert config.pool == []


def test_a_full_matrix_gives_one_bank_per_module_reaching_every_evse() -> None:
    config = parse_config(STATION + EVSES + MATRIX)
    (pool,) = config.pool
    assert pool.policy is Policy.EQUAL_SHARE
    assert pool.evse_ids == ("E1", "E2")
    assert pool.banks() == tuple(
        BankTopology(f"m{i}", (f"m{i}",), frozenset({"E1", "E2"}), wired=False) for i in range(1, 4)
    )
    assert [(c.bank, c.evse, c.command, c.feedback) for c in pool.contactor][:2] == [
        ("m1", "E1", "K_m1_E1_CMD", "K_m1_E1_FB"),
        ("m1", "E2", "K_m1_E2_CMD", "K_m1_E2_FB"),
    ]


def test_groups_switch_their_modules_together() -> None:
    config = parse_config(STATION + EVSES + GROUPS)
    assert [(b.name, b.modules, b.evse_ids) for b in config.pool[0].banks()] == [
        ("bank_a", ("m1", "m2"), frozenset({"E1", "E2"})),
        ("bank_b", ("m3", "m4"), frozenset({"E1", "E2"})),
    ]


def test_a_wired_bank_and_a_partial_matrix_are_valid() -> None:
    text = _pool(
        _module("base")
        + _module("m1")
        + _module("m2")
        + '\n[[pool.group]]\nname = "base_bank"\nmodules = ["base"]\nwired_to = "E1"\n'
        + _contactor("m1", "E1")
        + _contactor("m1", "E2")
        + _contactor("m2", "E2"),
        evses=("E1", "E2"),
    )
    text = text.replace(
        '{ evse_id = "E2" }', '{ evse_id = "E2", minimum_power_w = 30000, weight = 2 }'
    )
    text = text.replace('name = "cabinet"', 'name = "cabinet"\npolicy = "priority"')
    (pool,) = parse_config(STATION + EVSES + text).pool
    assert pool.policy is Policy.PRIORITY
    assert (pool.evse[1].minimum_power_w, pool.evse[1].weight) == (30000.0, 2.0)
    assert [(b.name, b.evse_ids, b.wired) for b in pool.banks()] == [
        ("base_bank", frozenset({"E1"}), True),
        ("m1", frozenset({"E1", "E2"}), False),
        ("m2", frozenset({"E2"}), False),
    ]


def test_a_pool_of_one_evse_is_valid() -> None:
    text = _pool(_module("m1") + _contactor("m1", "E1"), evses=("E1",))
    assert parse_config(STATION + _dc_evse("E1") + text).pool[0].evse_ids == ("E1",)


WIRED_AND_SWITCHED = (
    _module("m1")
    + '\n[[pool.group]]\nname = "bank"\nmodules = ["m1"]\nwired_to = "E1"\n'
    + _contactor("bank", "E2", "group")
)
IN_TWO_GROUPS = (
    _module("m1")
    + _module("m2")
    + '\n[[pool.group]]\nname = "a"\nmodules = ["m1", "m2"]\n'
    + '\n[[pool.group]]\nname = "b"\nmodules = ["m2"]\n'
    + _contactor("a", "E1", "group")
    + _contactor("b", "E2", "group")
)
GROUPED_WITH_OWN = (
    _module("m1")
    + _module("m2")
    + '\n[[pool.group]]\nname = "a"\nmodules = ["m1", "m2"]\n'
    + _contactor("a", "E1", "group")
    + _contactor("m2", "E2")
)
SHARED_COMMAND = (
    _module("m1")
    + _contactor("m1", "E1")
    + _contactor("m1", "E2").replace("K_m1_E2_CMD", "K_m1_E1_CMD")
)
SHARED_FEEDBACK = (
    _module("m1")
    + _contactor("m1", "E1")
    + _contactor("m1", "E2").replace("K_m1_E2_FB", "K_m1_E1_FB")
)
PAIR_TWICE = (
    _module("m1")
    + _contactor("m1", "E1")
    + _contactor("m1", "E1", tag="b")
    + _contactor("m1", "E2")
)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            WIRED_AND_SWITCHED,
            "pool[0]: contactor[0]: group bank is wired to E1 without a contactor: "
            "closing this one would join E1's bus to E2's",
        ),
        (
            IN_TWO_GROUPS,
            "pool[0]: group[1] b: module m2 is also in group a: its two banks could close to "
            "two EVSEs and join their buses",
        ),
        (
            GROUPED_WITH_OWN,
            "pool[0]: contactor[1]: module m2 switches with group a: a contactor of its own "
            "could put it on a second EVSE's bus",
        ),
        (
            SHARED_COMMAND,
            "pool[0]: contactor[1].command: signal K_m1_E1_CMD is also contactor[0].command "
            "(a contactor listed twice)",
        ),
        (
            SHARED_FEEDBACK,
            "pool[0]: contactor[1].feedback: signal K_m1_E1_FB is also contactor[0].feedback "
            "(a contactor listed twice)",
        ),
        (
            PAIR_TWICE,
            "pool[0]: contactor[1]: m1 to E1 is listed twice (also contactor[0])",
        ),
        (
            _module("m1") + _contactor("m1", "E3"),
            "pool[0]: contactor[0].evse: 'E3' is not an EVSE of the pool",
        ),
        (
            _module("m1") + _contactor("m9", "E1") + _contactor("m1", "E2"),
            "pool[0]: contactor[0].module: no module 'm9' in this pool",
        ),
        (
            _module("m1") + _contactor("m1", "E1"),
            "pool[0]: EVSE E2 is fed by no bank of the pool",
        ),
        (
            _module("m1") + _module("m2") + _contactor("m1", "E1") + _contactor("m1", "E2"),
            "pool[0]: m2 has no contactor to any EVSE of the pool",
        ),
        (
            _module("m1") + _module("m1") + _contactor("m1", "E1") + _contactor("m1", "E2"),
            "pool[0]: each module name once in a pool, repeated: m1",
        ),
        (
            _module("m1")
            + '\n[[pool.contactor]]\nevse = "E1"\nmodule = "m1"\ngroup = "g"\n'
            + 'command = "A"\nfeedback = "B"\n',
            "pool[0].contactor[0]: a contactor switches one `module` or one `group`: "
            "name exactly one",
        ),
        (
            _module("m1") + _contactor("m1", "E1").replace("K_m1_E1_CMD", "1bad"),
            "pool[0].contactor[0].command: String should match pattern "
            "'^[A-Za-z_][A-Za-z0-9_]*$' (got '1bad')",
        ),
    ],
)
def test_a_topology_that_could_join_two_buses_is_refused(body: str, expected: str) -> None:
    assert expected in _problems(STATION + EVSES + _pool(body))


def test_a_module_in_two_pools_is_refused() -> None:
    first = _pool(_module("m1", 1) + _contactor("m1", "E1"), name="p1", evses=("E1",))
    second = _pool(_module("m2", 1) + _contactor("m2", "E2", tag="x"), name="p2", evses=("E2",))
    assert _problems(STATION + EVSES + first + second) == [
        "pool: pool[1].module[0]: the same device as pool[0].module[0]"
    ]


def test_a_module_name_in_two_pools_is_refused() -> None:
    first = _pool(_module("m1") + _contactor("m1", "E1"), name="p1", evses=("E1",))
    second = _pool(_module("m1") + _contactor("m1", "E2"), name="p2", evses=("E2",))
    assert _problems(STATION + EVSES + first + second) == [
        "pool: pool[1].module[0]: module m1 is also in pool p1"
    ]


def test_a_pool_module_that_is_also_an_evse_module_is_refused() -> None:
    evses = _dc_evse("E1") + _dc_evse("E9", _module("own", 3, "evse.module")) + _dc_evse("E2")
    text = _pool(_module("m1", 3) + _contactor("m1", "E1") + _contactor("m1", "E2"))
    assert _problems(STATION + evses + text) == [
        "pool: pool[0].module[0]: the same device as evse[1].module[0]"
    ]


@pytest.mark.parametrize(
    ("evses", "pools", "expected"),
    [
        (
            EVSES,
            _pool(_module("m1") + _contactor("m1", "E1"), evses=("E1",)) * 2,
            "pool: pool names must be unique, repeated: cabinet",
        ),
        (
            EVSES + AC_EVSE,
            _pool(_module("m1") + _contactor("m1", "AC1"), evses=("AC1",)),
            "pool: pool[0] cabinet: AC1 is an ac EVSE: a pool feeds dc EVSEs",
        ),
        (
            EVSES,
            _pool(_module("m1") + _contactor("m1", "E7"), evses=("E7",)),
            "pool: pool[0] cabinet: no EVSE 'E7'",
        ),
        (
            _dc_evse("E1", _module("own", None, "evse.module")),
            _pool(_module("m1") + _contactor("m1", "E1"), evses=("E1",)),
            "pool: pool[0] cabinet: E1 has [[evse.module]] of its own: a pooled EVSE takes its "
            "modules from the pool (move them into [[pool.module]])",
        ),
        (
            EVSES,
            _pool(_module("m1") + _contactor("m1", "E1"), name="a", evses=("E1",))
            + _pool(_module("m2") + _contactor("m2", "E1", tag="x"), name="b", evses=("E1",)),
            "pool: pool[1] b: E1 is also fed by pool a",
        ),
        (
            EVSES,
            _pool(_module("m1") + _contactor("m1", "E1"), name="a", evses=("E1",))
            + _pool(
                _module("m2") + _contactor("m2", "E2").replace("m2_E2", "m1_E1"),
                name="b",
                evses=("E2",),
            ),
            "pool: pool b: signal K_m1_E1_CMD is also pool a's",
        ),
        (
            EVSES,
            _pool(_module("m1", 1).replace("can0", "can9") + _contactor("m1", "E1"), evses=("E1",)),
            "pool: pool[0].module[0].can.bus: no [[bus]] named 'can9'",
        ),
    ],
)
def test_pools_must_fit_the_station(evses: str, pools: str, expected: str) -> None:
    assert expected in _problems(STATION + evses + pools)
