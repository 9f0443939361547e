"""The device layer: CAN buses, declarative device profiles (hal/), codecs and replay."""
