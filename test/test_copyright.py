from lint_paths import LINT_PATHS
import pytest

# ament_copyright is not on PyPI; this runs where a ROS 2 distribution provides it.
ament_copyright = pytest.importorskip('ament_copyright.main')


@pytest.mark.copyright
@pytest.mark.linter
def test_copyright():
    rc = ament_copyright.main(argv=LINT_PATHS)
    assert rc == 0, 'Found errors'
