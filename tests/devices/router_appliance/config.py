"""A test appliance: one direct stack over two ``netif()`` ports, routing between them.
It proves ``stack(netifs=[...])`` end to end (``fata run --netif NAME=if:IF --ipv4
NAME=ADDR/LEN``), the IP layer's forwarding, and answers ping on both sides."""

from fata.config import Appliance, console, lifecycle, netif, stack

appliance = Appliance(
    name="router-test",
    version="0.1.0",
    entry="fata_router_test.unikernel:start",
    devices={"left": netif(), "right": netif(), "stack": stack(netifs=["left", "right"]),
             "console": console(), "lifecycle": lifecycle()},
)
