"""Files tests keep upload staging inside the test's own folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _data_dir(settings: Any, tmp_path: Path) -> Path:
    settings.GATEWAY_DATA_DIR = tmp_path / "data"
    return settings.GATEWAY_DATA_DIR
