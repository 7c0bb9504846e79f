"""The built wheel carries every module and migration: `pip install .` (not only an editable install, which hides a
package missing from pyproject's list) makes a ledger and imports each module of the source tree."""

import os
import shutil
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
    # Built from a copy without build/: setuptools would otherwise pack a stale build/lib, hiding a package that
    # pyproject no longer lists.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        "build", "dist", ".venv", ".git", "*.egg-info", "__pycache__", ".pytest_cache", "cassettes", "tests"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir",
                    str(dist), str(source)], check=True, capture_output=True, cwd=tmp_path)
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
    assert "285 new" in result.stderr
    where = subprocess.run([str(python), "-c", "import reversesync.ledger as l, importlib.resources as r; "
                            "print(l.__file__); print(sorted(p.name for p in "
                            "r.files('reversesync.migrations').iterdir() if p.name.endswith('.sql')))"],
                           capture_output=True, text=True, cwd=ledger.parent, check=True).stdout
    assert str(env_dir) in where.splitlines()[0]
    assert eval(where.splitlines()[1]) == sorted(p.name for p in (ROOT / "migrations").glob("*.sql"))
    modules = sorted(".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                     for path in (ROOT / "reversesync").rglob("*.py"))
    imported = subprocess.run([str(python), "-c", "import importlib, sys\nfor name in sys.argv[1:]: "
                               "print(name, importlib.import_module(name).__file__)", *modules],
                              capture_output=True, text=True, cwd=ledger.parent)
    assert imported.returncode == 0, imported.stderr
    outside = [line for line in imported.stdout.splitlines() if str(env_dir) not in line]
    assert len(imported.stdout.splitlines()) == len(modules) > 60 and outside == []
