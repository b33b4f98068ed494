"""Named pause points for crash tests.

The nightly job promises that a run killed at any moment leaves the database and the serving
snapshot as they were. To test that deterministically, a test sets LEADSCORE_PAUSE_AT to a
point name; when the job reaches that point it writes `<name>.reached` into LEADSCORE_PAUSE_DIR
and sleeps, so the test can SIGKILL it exactly there. Unset (always, in production) it is a
no-op costing one dictionary lookup.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def pause_point(name: str, detail: str = "") -> None:
    """detail (e.g. a child's pid) goes on the marker's second line."""
    if os.environ.get("LEADSCORE_PAUSE_AT") != name:
        return
    folder = Path(os.environ.get("LEADSCORE_PAUSE_DIR", "."))
    (folder / f"{name}.reached").write_text(f"{os.getpid()}\n{detail}".strip())
    time.sleep(float(os.environ.get("LEADSCORE_PAUSE_SECONDS", "600")))
