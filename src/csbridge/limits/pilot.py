"""The control pilot's PWM duty cycle for a current the EVSE may offer, per IEC 61851-1 (Annex
A, the table of duty cycles an EVSE provides; SAE J1772 uses the same one).

What the EV reads from a duty cycle D (in %), as the public descriptions of that table give it:

- D < 3 %, 7 % < D < 8 % and D > 97 %: no charging allowed (100 %, a steady +12 V with the
  oscillator off, is states B1/C1/D1: the EVSE is not ready);
- 3 % <= D <= 7 % (nominally 5 %): charge only under digital communication (ISO 15118/DIN);
- 8 % <= D < 10 %: 6 A;
- 10 % <= D <= 85 %: D x 0.6 A (6 A to 51 A);
- 85 % < D <= 96 %: (D - 64) x 2.5 A (above 52.5 A to 80 A);
- 96 % < D <= 97 %: 80 A.

So the EVSE signals I / 0.6 % for 6 A to 51 A and I / 2.5 + 64 % for 51 A to 80 A.

Sources for the formulas and the table:
- Fluke FEV300 test adapter manual, "Table 4. Calculations of max. charging current on basis of
  duty cycle" and its error states, including "Duty Cycle = 100 %, State B1, C1 or D1; no
  charging allowed" (https://www.easymanua.ls/fluke/fev300/manual?p=12);
- Gossen Metrawatt M525B operating instructions, "Evaluation of the PWM Signal", the duty
  cycle table "specified by IEC 61851", "Duty cycle > 97 %: Charging not permissible"
  (https://manualshive.com/en/manual/gossen-metrawatt/m525b/2247291?page=12);
- OpenEVSE's pilot test guide, "Pilot Signal Frequency and Duty Cycle": 6 to 51 A, duty cycle
  = amps / 0.6; 51 to 80 A, amps = (duty cycle - 64) x 2.5
  (https://openevse.dozuki.com/Guide/diff/step/12/87?gsrB=372&gstB=373);
- EVerest everest-core, modules/EvseManager/Charger.cpp, Charger::ampere_to_duty_cycle: the
  same two formulas; below 5.9 A and above 80.1 A it sets a 100 % duty cycle (X1, no PWM).

Choices where the table leaves the EVSE a choice, all on the side of never offering more than
was asked (an EV may draw what the pilot says):

- Below 6 A (zero, negative, not a number): no current can be signalled, and 6 A would be more
  than asked, so 100 %: the steady +12 V of "EVSE not ready", which the EV reads as "no
  charging allowed" (Fluke, Gossen) and which EVerest also sends below 6 A.
- Between 51 A and 52.5 A no duty cycle means that current: I / 0.6 would read as more
  ((D - 64) x 2.5 above 85 %), I / 2.5 + 64 as less than 51 A. 85 % (51 A) is the most that
  stays within what was asked (EVerest also clamps to 51 A there).
- Above 80 A (or infinite): 80 A's 96 %, the most the table can say.
- The duty cycle is rounded down to the 0.1 % the charger board carries (CMD_PWM_DUTY), so no
  rounding on the way to the board can turn it into a little more current.

With high-level communication the pilot says 5 % whatever the current: the EV learns its limits
from ISO 15118 or DIN 70121, not from the PWM.
"""

from __future__ import annotations

import math

DIGITAL_COMMUNICATION_PERCENT = 5.0
"""The nominal duty cycle of "charge under digital communication" (3 % to 7 %)."""
NO_CURRENT_PERCENT = 100.0
"""Steady +12 V, the oscillator off (states B1/C1/D1): no charging allowed."""
MIN_SIGNALLED_A = 6.0
"""The lowest current a duty cycle can offer."""
MAX_SIGNALLED_A = 80.0
"""The highest current a duty cycle can offer."""
LOW_RANGE_TOP_A = 51.0
"""The top of I / 0.6 (85 %); the next signalable current, 52.5 A, is (85 % - 64) x 2.5."""
RESOLUTION_PERCENT = 0.1
"""The charger board's duty-cycle step."""
_FLOAT_SLACK = 1e-6
"""Absorbs binary float error (63 / 2.5 + 64 is 89.2 plus a few 1e-15) before rounding down,
so 63 A gives 89.2 %, not 89.1 %."""


def duty_percent(current_a: float, hlc: bool) -> float:
    """The duty cycle (0-100 %) that offers at most `current_a` amperes: the largest one on the
    board's 0.1 % grid that an EV reads as no more than `current_a` (see the module's
    docstring for the table, the sources and the choices below 6 A, between 51 A and 52.5 A,
    and above 80 A); 5 % under high-level communication."""
    if hlc:
        return DIGITAL_COMMUNICATION_PERCENT
    if math.isnan(current_a) or current_a < MIN_SIGNALLED_A:
        return NO_CURRENT_PERCENT
    current_a = min(current_a, MAX_SIGNALLED_A)
    if current_a <= LOW_RANGE_TOP_A:
        duty = current_a / 0.6
    elif current_a < _current_above_85_percent():
        duty = LOW_RANGE_TOP_A / 0.6
    else:
        duty = current_a / 2.5 + 64
    return _round_down(duty)


def offered_current_a(duty: float) -> float:
    """What an EV reads from a duty cycle (in %) without high-level communication: the current
    it may draw, 0 where the table allows no charging (and in the 5 % digital band, where the
    current comes from ISO 15118 instead)."""
    if 8.0 <= duty < 10.0:
        return MIN_SIGNALLED_A
    if 10.0 <= duty <= 85.0:
        return duty * 0.6
    if 85.0 < duty <= 96.0:
        return (duty - 64) * 2.5
    if 96.0 < duty <= 97.0:
        return MAX_SIGNALLED_A
    return 0.0


def _current_above_85_percent() -> float:
    """52.5 A: where (D - 64) x 2.5 starts, just above 85 %."""
    return (85.0 - 64) * 2.5


def _round_down(duty: float) -> float:
    steps = math.floor(duty / RESOLUTION_PERCENT + _FLOAT_SLACK)
    return round(steps * RESOLUTION_PERCENT, 1)
