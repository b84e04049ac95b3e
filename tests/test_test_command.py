"""The README's test command distributes the suite as it says: ``-n 2 --dist loadgroup`` keeps
the tests of one ``xdist_group`` on one worker (``conftest.py`` makes that hold under pytest 9,
where pytest-xdist 3.8 alone spreads them over both workers)."""
import os
import re
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))

TESTS = """
import time
import pytest

@pytest.mark.xdist_group("shared")
@pytest.mark.parametrize("i", range(6))
def test_grouped(i):
    time.sleep(0.05)

@pytest.mark.parametrize("i", range(6))
def test_free(i):
    time.sleep(0.05)
"""


def test_loadgroup_keeps_a_group_on_one_worker(tmp_path):
    pytest.importorskip("xdist")
    shutil.copy(os.path.join(HERE, "conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_groups.py").write_text(TESTS)
    out = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup",
                          "-v", "-p", "no:cacheprovider", "test_groups.py"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    ran = re.findall(r"\[(gw\d)\] .*PASSED test_groups\.py::(test_\w+)\[", out.stdout)
    assert len(ran) == 12, out.stdout
    grouped = {w for w, name in ran if name == "test_grouped"}
    assert len(grouped) == 1, f"the group ran on {sorted(grouped)}:\n{out.stdout}"
    assert {w for w, _ in ran} == {"gw0", "gw1"}, out.stdout  # the run was distributed
