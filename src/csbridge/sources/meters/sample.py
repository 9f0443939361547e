"""From a meter's named values to the MeterSample the engine keeps."""

from __future__ import annotations

from collections.abc import Mapping

from csbridge.sources import MeterSample


def _phases(
    values: Mapping[str, float | None], quantity: str, unit: str
) -> tuple[float | None, float | None, float | None] | None:
    l1, l2, l3 = (values.get(f"{quantity}_{phase}_{unit}") for phase in ("l1", "l2", "l3"))
    if l1 is None and l2 is None and l3 is None:
        return None
    return (l1, l2, l3)


def sample_from_values(at: float, values: Mapping[str, float | None]) -> MeterSample:
    """`values` by the register maps' field names; a field the meter lacks stays None."""
    return MeterSample(
        at=at,
        energy_import_wh=values.get("energy_import_wh"),
        energy_export_wh=values.get("energy_export_wh"),
        voltage_v=_phases(values, "voltage", "v"),
        current_a=_phases(values, "current", "a"),
        power_factor=values.get("power_factor"),
        frequency_hz=values.get("frequency_hz"),
        dc_voltage_v=values.get("dc_voltage_v"),
        dc_current_a=values.get("dc_current_a"),
        power_w=values.get("power_w"),
    )


def values_of(sample: MeterSample) -> dict[str, float | None]:
    """`sample` by the register maps' field names (what a simulated meter serves)."""
    values: dict[str, float | None] = {
        "energy_import_wh": sample.energy_import_wh,
        "energy_export_wh": sample.energy_export_wh,
        "power_factor": sample.power_factor,
        "frequency_hz": sample.frequency_hz,
        "dc_voltage_v": sample.dc_voltage_v,
        "dc_current_a": sample.dc_current_a,
        "power_w": sample.power_w,
    }
    for quantity, unit, phases in (
        ("voltage", "v", sample.voltage_v),
        ("current", "a", sample.current_a),
    ):
        for name, value in zip(("l1", "l2", "l3"), phases or (None, None, None), strict=True):
            values[f"{quantity}_{name}_{unit}"] = value
    return values
