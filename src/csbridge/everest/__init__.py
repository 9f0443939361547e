"""EVerest's MQTT API (everest_api/1/...): devices written for it as csbridge sources, and a
csbridge CAN stack offered to EVerest as a power_supply_DC module."""
