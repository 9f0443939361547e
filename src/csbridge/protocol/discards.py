"""Why a well-formed message from Josev is not acted on. The codec's RejectReason says what is
wrong with a payload; these say why a payload with nothing wrong in it is still not acted on.
Both are counted as inbound_rejected{reason}."""

from __future__ import annotations

import enum


class Discard(enum.StrEnum):
    RETAINED = "retained"
    """Replayed by the broker from its store because we (re)subscribed: whatever it asks was
    asked at some earlier time, perhaps before a restart, and acting on it now (a setpoint
    switching modules on at every reconnect) is what must never happen."""
    DUPLICATE = "duplicate"
    """Handled within the last minute and received again (a QoS 1 redelivery, a retry): its
    answer, if it had one, is sent again; nothing is done twice."""
    UNMATCHED_RESPONSE = "unmatched_response"
    """A response no request of ours is waiting for: an unknown id, one answered already, one
    whose wait timed out, or one naming another kind than the request it answers."""
