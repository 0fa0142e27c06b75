"""The ``otel-crew`` command's exit codes, documented in the README.

0 success; 1 the demo pipeline failed, or ``doctor`` found something to fix;
2 bad usage or a bad ``OTEL_*`` variable; 3 something the command needs is
not installed (the demo without CrewAI).
"""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MISSING = 0, 1, 2, 3
