"""``python -m service``: the same server as ``oms-audit serve``, without loading the job CLI."""

from service.server import main

main()
