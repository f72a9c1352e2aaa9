"""Loaded by Python at start-up when this folder is on PYTHONPATH (tests only): runs the process's wall clock
BATCHES_TEST_CLOCK_SKEW seconds ahead, for Django's timezone.now and time.time, as on a machine whose clock is off."""

import os

SKEW = float(os.environ.get("BATCHES_TEST_CLOCK_SKEW") or 0)

if SKEW:
    import time
    from datetime import timedelta

    from django.utils import timezone

    _time, _now = time.time, timezone.now
    time.time = lambda: _time() + SKEW
    timezone.now = lambda: _now() + timedelta(seconds=SKEW)
