"""otel-crew's benchmarks: ``python -m benchmarks`` writes BENCHMARKS.md.

Every comparison is measured in one run, interleaved in blocks (A B A B ...,
the order rotated each block), and reported as medians and ratios, never as
one absolute time. Nothing here asserts a timing.
"""
