"""The xenstore tests import the appliance's package from its directory."""

from __future__ import annotations

import sys
from pathlib import Path

APPLIANCE = Path(__file__).resolve().parents[2] / "appliances" / "xenstore_stub"
if str(APPLIANCE) not in sys.path:
    sys.path.insert(0, str(APPLIANCE))
