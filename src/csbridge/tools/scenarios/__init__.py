"""Scripted Josev sessions for the emulator against a simulated station: a whole DC session, a
whole AC session, misuse (out-of-sequence requests that must be refused), and a bidirectional
DC session with a meter (bpt-session), two EVs sharing one pool of modules (shared-pool), with
what they share (one EVSE driven as its EV would, an EV's charge loop in the background, the
registry of scenarios by name) and a second client that watches the station's limits reports.

Imports tools' emulator, messages and mqtt.
"""

__all__: list[str] = []
