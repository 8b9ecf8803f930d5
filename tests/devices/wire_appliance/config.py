"""A test appliance with two raw Ethernet ports joined as a wire: what arrives on one
leaves by the other.  It proves ``netif()`` devices end to end (config DSL, the registry,
``fata run --netif NAME=tap:IF|if:IF``, batched frame I/O with offloads finished)."""

from fata.config import Appliance, console, lifecycle, netif

appliance = Appliance(
    name="wire-test",
    version="0.1.0",
    entry="fata_wire_test.unikernel:start",
    devices={"left": netif(), "right": netif(), "console": console(),
             "lifecycle": lifecycle()},
)
