"""A host whose wall clock is off, for the many-hosts test (tests/test_hosts.py), as libfaketime would make one:
with this folder on PYTHONPATH and FLOWSIM_TEST_WALL_SKEW_S set, the process's wall clock (time.time, time.time_ns)
reads that many seconds off; its monotonic clock, and the kernel's clock that TLS checks, are left alone. Test-only:
nothing in flowsim imports it."""

import os
import time

_skew = float(os.environ.get("FLOWSIM_TEST_WALL_SKEW_S", "0") or 0)
if _skew:
    _time, _time_ns = time.time, time.time_ns
    time.time = lambda: _time() + _skew  # type: ignore[assignment]
    time.time_ns = lambda: _time_ns() + int(_skew * 1e9)  # type: ignore[assignment]
