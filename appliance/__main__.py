"""``python -m appliance`` is the same as the ``ephemera`` command."""

from appliance.cli import main

raise SystemExit(main())
