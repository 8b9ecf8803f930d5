"""Run os-ken applications as ``osken-manager`` did (os-ken 4 ships no such script).

    python osken_launch.py APP [APP ...] -- [os-ken options ...]

Each ``APP`` is a module name (``os_ken.tests.switch.tester``) or a file path; os-ken's
options (``--ofp-tcp-listen-port``, ``--test-switch-dir`` ...) follow the ``--``.  os-ken's
own flags are registered first, as its manager did, so every app's options parse.  The
harnesses run os-ken's switch tester (switch_tester.py) and the learning switch on os-ken
(osken_simple_switch.py, the controller benchmark's competitor) with it.
"""

from __future__ import annotations

import logging
import sys


def main(argv: list[str]) -> None:
    """Load the apps through os-ken's ``AppManager`` and run them until one ends the
    process (the switch tester kills itself with SIGTERM when its report is out)."""
    if "--" in argv:
        at = argv.index("--")
        apps, options = argv[:at], argv[at + 1:]
    else:
        apps, options = argv, []
    if not apps:
        sys.exit("usage: osken_launch.py APP [APP ...] -- [os-ken options]")
    from os_ken.lib import hub

    hub.patch(thread=False)
    # flags and log register the option groups the apps read (as os-ken's manager did)
    from os_ken import cfg, flags, log  # noqa: F401
    from os_ken.base import app_manager

    cfg.CONF(options, project="os_ken")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    app_manager.AppManager.run_apps(apps)


if __name__ == "__main__":
    main(sys.argv[1:])
