"""The built wheel carries its migrations: `pip install .` (not only an editable install) makes a ledger."""

import os
import site
import subprocess
import sys
import sysconfig
import venv

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_wheel_installs_in_fresh_venv_and_creates_ledger(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir",
                    str(dist), str(ROOT)], check=True, capture_output=True, cwd=tmp_path)
    [wheel] = list(dist.glob("reversesync-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # Dependencies come from this interpreter's site-packages (no network needed); reversesync itself
    # only from the wheel, which is installed without them.
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    ours = [sysconfig.get_paths()["purelib"], *site.getsitepackages()]
    with open(os.path.join(purelib, "zz_test_deps.pth"), "w") as handle:
        handle.write("\n".join(dict.fromkeys(ours)) + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True)
    ledger = tmp_path / "elsewhere" / "wheel.db"
    ledger.parent.mkdir()
    script = env_dir / "bin" / "reversesync"
    result = subprocess.run([str(script), "--ledger", str(ledger), "load", "--example"], capture_output=True,
                            text=True, cwd=ledger.parent)
    assert result.returncode == 0, result.stderr
    assert "285 new" in result.stdout
    where = subprocess.run([str(python), "-c", "import reversesync.ledger as l, importlib.resources as r; "
                            "print(l.__file__); print(sorted(p.name for p in "
                            "r.files('reversesync.migrations').iterdir() if p.name.endswith('.sql')))"],
                           capture_output=True, text=True, cwd=ledger.parent, check=True).stdout
    assert str(env_dir) in where.splitlines()[0]
    assert "001_initial.sql" in where
