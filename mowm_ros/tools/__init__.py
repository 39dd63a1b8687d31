"""Command-line tools behind ``mowm`` (training, evaluation, data, benchmarks)."""
