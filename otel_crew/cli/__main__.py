"""``python -m otel_crew.cli``: the ``otel-crew`` command."""

import sys

from otel_crew.cli.main import main

sys.exit(main())
