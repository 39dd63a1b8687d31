"""
Memory benchmarks: ``python bench/memory_bench.py [options]``, same as ``mowm bench memory``.

Examples::

    python bench/memory_bench.py --only integrate render --out memory_bench.json
    python bench/memory_bench.py --only hour --hour-frames 108000 --hour-size 160x120
"""

import sys

from mowm_ros import cli

if __name__ == '__main__':
    sys.exit(cli.main(['bench', 'memory'] + sys.argv[1:]))
