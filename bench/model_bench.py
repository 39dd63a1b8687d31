"""
World-model benchmark: ``python bench/model_bench.py [options]``, same as ``mowm bench model``.

Examples::

    python bench/model_bench.py --threads 2 --out model_bench.json
    python bench/model_bench.py --checkpoint random --steps 4 --repeats 3
"""

import sys

from mowm_ros import cli

if __name__ == '__main__':
    sys.exit(cli.main(['bench', 'model'] + sys.argv[1:]))
