from lint_paths import REPO_ROOT
import pytest

# ament_xmllint is not on PyPI; this runs where a ROS 2 distribution provides it.
ament_xmllint = pytest.importorskip('ament_xmllint.main')


@pytest.mark.linter
@pytest.mark.xmllint
def test_xmllint():
    rc = ament_xmllint.main(argv=[str(REPO_ROOT / 'package.xml')])
    assert rc == 0, 'Found errors'
