"""Where the tests find the *installed* package: its executables and share files.

- Under ``colcon test`` (or in any shell that sourced a workspace's ``install/setup.bash``), the
  ament index knows ``dkp_slam``: executables are ``<prefix>/lib/dkp_slam/<name>`` and share files
  ``<prefix>/share/dkp_slam/...``, as ``ros2 run`` and ``ros2 launch`` find them.
- Otherwise (``make test``: a pip install in a venv), the console scripts next to the Python
  interpreter and the share files of the source tree (``config/``, ``launch/``).

With ``DKP_SLAM_TEST_INSTALL=colcon`` in the environment (CI's colcon run sets it) a missing
ament index entry fails the test instead of falling back, so that run cannot silently test the
pip install.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Optional

import pytest

PACKAGE = "dkp_slam"
ROOT = Path(__file__).resolve().parents[1]


def ament_prefix() -> Optional[Path]:
    """The install prefix of ``dkp_slam`` in the ament index, or None when it is not indexed."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    except ImportError:
        prefix = None
    else:
        try:
            prefix = Path(get_package_prefix(PACKAGE))
        except (PackageNotFoundError, OSError):  # OSError: AMENT_PREFIX_PATH unset
            prefix = None
    if prefix is None and os.environ.get("DKP_SLAM_TEST_INSTALL") == "colcon":
        pytest.fail("DKP_SLAM_TEST_INSTALL=colcon but dkp_slam is not in the ament index "
                    f"(AMENT_PREFIX_PATH={os.environ.get('AMENT_PREFIX_PATH')!r})")
    return prefix


def executable(name: str) -> Path:
    """The installed console script ``name`` (``frontend_node``, ``dkp-slam``); skips when the
    package is not installed at all."""
    prefix = ament_prefix()
    if prefix is not None:
        path = prefix / "lib" / PACKAGE / name
    else:
        path = Path(shutil.which(name) or Path(sys.executable).parent / name)
    if not path.is_file():
        pytest.skip(f"console script {name} not installed at {path} (make setup, or colcon "
                    f"build and source install/setup.bash)")
    return path


def share_file(*parts: str) -> Path:
    """``share/dkp_slam/<parts>`` of the installed package (the source tree for a pip install)."""
    prefix = ament_prefix()
    path = (prefix / "share" / PACKAGE if prefix is not None else ROOT).joinpath(*parts)
    assert path.exists(), f"{path} is not installed"
    return path
