"""A clone without the traces is told where the public data comes from, in one line."""

from __future__ import annotations

import pytest

from homenode.errors import InputError
from homenode.sim import scenario as scenarios


@pytest.mark.parametrize(("name", "source"), [
    ("bitbrains", "gwa.ewi.tudelft.nl/datasets/gwa-t-12-bitbrains"),
    ("planetlab", "github.com/Cloudslab/cloudsim"),
])
def test_a_missing_traces_directory_names_the_source(name, source, monkeypatch, tmp_path):
    monkeypatch.setenv("HOMENODE_TRACES_DIR", str(tmp_path / "none"))
    with pytest.raises(InputError) as e:
        scenarios.load(name)
    msg = str(e.value)
    assert "\n" not in msg and source in msg and "$HOMENODE_TRACES_DIR" in msg
    monkeypatch.setenv("HOMENODE_TRACES_DIR", str(tmp_path))      # exists, but empty
    with pytest.raises(InputError, match="matches no file") as e:
        scenarios.load(name)
    assert source in str(e.value)
