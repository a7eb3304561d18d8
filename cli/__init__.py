"""The ``oms-audit`` command line."""

import os

# An offline data tool: keep Prefect's ephemeral API from phoning home (its telemetry also contends for the
# ephemeral SQLite database and prints lock errors). An explicit setting in the environment still wins.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
