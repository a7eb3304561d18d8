"""The guide's HTTP API (``oms-audit serve``): author-tracked writes, audit logs, service-account check, metrics."""
