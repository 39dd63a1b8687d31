"""What the linters check: all of the package's Python, never the virtual environment."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LINT_PATHS = [str(REPO_ROOT / p) for p in ('mowm_ros', 'test', 'launch', 'setup.py')
              + tuple(p for p in ('bench', 'scripts') if (REPO_ROOT / p).is_dir())]
