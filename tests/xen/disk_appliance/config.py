"""A test appliance with a disk: it serves its ``block()`` device's sectors over TCP, so a
test can run it as a Xen guest (``fata build --target xen``) and read and write its disk
through blkfront/blkback, from a host that reaches it through netfront/netback."""

from fata.config import Appliance, arg, block, console, lifecycle, stack

appliance = Appliance(
    name="disk-test",
    version="0.1.0",
    entry="fata_disk_test.unikernel:start",
    devices={"stack": stack(), "disk": block(), "console": console(),
             "lifecycle": lifecycle()},
    args=[arg("port", type=int, default=7000, help="TCP port")],
)
