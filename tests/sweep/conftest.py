from pathlib import Path

import pytest
from sweep_support import write_bitbrains


@pytest.fixture
def traces(tmp_path: Path) -> Path:
    root = tmp_path / "traces"
    write_bitbrains(root)
    return root
