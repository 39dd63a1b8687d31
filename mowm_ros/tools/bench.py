"""
``mowm bench <benchmark>``: benchmarks that print a Markdown table and can write JSON.

Each benchmark registers its name, help, arguments and the module whose ``run(args)`` does
the work; that module is imported only when its benchmark runs, so ``mowm`` stays quick to
start. Add one with ``register(...)`` below.
"""

from dataclasses import dataclass
import importlib
import typing

from mowm_ros.device import device_argument, DEVICE_HELP
from mowm_ros.model.compiled import COMPILE_MODES


@dataclass
class Benchmark:
    help_text: str
    add_arguments: typing.Callable
    module: str              # defines run(args) -> exit status


BENCHMARKS = {}


def register(name, help_text, add_arguments, module):
    BENCHMARKS[name] = Benchmark(help_text, add_arguments, module)


def add_memory_arguments(parser):
    parser.add_argument('--only', nargs='+', choices=('integrate', 'render', 'hour'),
                        help='run only these parts (default: all)')
    parser.add_argument('--repeat', type=int, default=3,
                        help='timing runs of integrate and render; medians are reported')
    parser.add_argument('--integrate-frames', type=int, default=60,
                        help='640x480 RGB-D frames per integrate run')
    parser.add_argument('--render-points', type=int, default=1_000_000,
                        help='points in the memory rendered from')
    parser.add_argument('--render-views', type=int, default=60, help='64x64 views per run')
    parser.add_argument('--hour-frames', type=int, default=108_000,
                        help='frames of the simulated hour (108,000 = one hour at 30 Hz)')
    parser.add_argument('--hour-size', default='160x120', help='frame size of the hour, WxH')
    parser.add_argument('--hour-max-points', type=int, default=1_000_000,
                        help='spatial memory cap during the hour')
    parser.add_argument('--hour-capacity', type=int, default=1000,
                        help='episodic buffer capacity during the hour')


register('memory', 'time spatial memory integration and rendering, and a simulated hour '
         'with capped memories', add_memory_arguments, 'mowm_ros.benchmarks.memory')


def add_model_arguments(parser):
    parser.add_argument('--checkpoint', default='',
                        help="checkpoint directory ('' shipped, 'random' untrained weights)")
    parser.add_argument('--episode', help='episode .npz to observe (default: synthetic)')
    parser.add_argument('--observe', type=int, default=40, help='frames observed first')
    parser.add_argument('--horizon', type=int, default=4, help='poses imagined per call')
    parser.add_argument('--steps', type=int, nargs='+', default=[1, 4, 8],
                        help='sampler step counts to time')
    parser.add_argument('--repeats', type=int, default=5, help='timed calls per setting')
    parser.add_argument('--device', default='auto', type=device_argument,
                        help=f'{DEVICE_HELP} (default: auto)')
    parser.add_argument('--paths', type=int, default=1,
                        help='paths imagined side by side per call (one batch per step)')
    parser.add_argument('--sets', nargs='+', help='expert sets to time, e.g. short_term '
                        '"all three" (default: all)')
    parser.add_argument('--compile', default='', choices=COMPILE_MODES,
                        help="torch.compile the sampler's network ('': eager)")
    parser.add_argument('--no-operating', dest='operating', action='store_false',
                        help='skip the rows with the finetuning thread alive and training')
    parser.add_argument('--finetune-threads', type=int,
                        help='torch threads of the finetuning thread (default: FinetuneConfig)')
    parser.add_argument('--finetune-nice', type=int,
                        help='niceness added to the finetuning thread (default: FinetuneConfig)')


register('model', 'time predicted frames per expert set and sampler steps, and finetuning '
         'steps', add_model_arguments, 'mowm_ros.benchmarks.model')


def add_scaling_arguments(parser):
    parser.add_argument('--checkpoint', default='',
                        help="checkpoint directory ('' shipped, 'random' untrained weights)")
    parser.add_argument('--frames', type=int, nargs='+', default=[100, 1000, 10_000],
                        help='observed-frame counts at which to measure')
    parser.add_argument('--horizon', type=int, default=4, help='poses imagined per call')
    parser.add_argument('--steps', type=int, default=4, help='sampler steps')
    parser.add_argument('--repeats', type=int, default=3, help='timed calls per measurement')
    parser.add_argument('--size', type=int, default=64, help='observed RGB-D frame size')
    parser.add_argument('--rate-hz', type=float, default=4.0, help='frame rate of the walk')
    parser.add_argument('--maze-cells', type=int, default=16,
                        help='side of the synthetic maze in 3 m cells')
    parser.add_argument('--max-points', type=int, default=0,
                        help='spatial memory cap (0: the world model default)')
    parser.add_argument('--plot', help='PNG plot path (default: --out with .png)')
    parser.add_argument('--device', default='auto', type=device_argument,
                        help=f'{DEVICE_HELP} (default: auto)')


register('scaling', 'latency and resident memory after 100, 1,000 and 10,000 observed '
         'frames (flat: history lives in adapters and capped memories)',
         add_scaling_arguments, 'mowm_ros.evaluation.scaling')


def run(args):
    torch = importlib.import_module('torch')
    torch.set_num_threads(min(args.threads, torch.get_num_threads()))
    return importlib.import_module(BENCHMARKS[args.benchmark].module).run(args)


def add_parser(subparsers):
    parser = subparsers.add_parser('bench', help='run benchmarks (Markdown table, JSON)')
    benchmarks = parser.add_subparsers(dest='benchmark', required=True)
    for name, benchmark in BENCHMARKS.items():
        sub = benchmarks.add_parser(name, help=benchmark.help_text)
        benchmark.add_arguments(sub)
        sub.add_argument('--out', help='write the results as JSON to this path')
        sub.add_argument('--threads', type=int, default=2,
                         help='at most this many torch threads (default 2)')
        sub.set_defaults(func=run)
