"""A backbone named twice in --backbone (in any spelling) is extracted once."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli


@pytest.mark.ray
def test_a_backbone_named_twice_is_extracted_once(tmp_path, synthetic_archive):
    result = run_cli("extract", "--local", "--data-dir", synthetic_archive, "--weights", "none",
                     "--backbone", "mobilenetv2,mobilenetv2,MobileNet_V2", "--image-size", "32",
                     "--limit", "20", "--out", tmp_path / "out")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout + result.stderr  # tables on stdout, messages on stderr
    rows = [ln for ln in text.splitlines() if ln.startswith("│ ")]
    assert len(rows) == 1 and "mobilenetv2" in rows[0], text
    assert rows[0].split("│")[3].strip() == "2"  # computed: 2 shards (20 train + 20 test)
    assert [p.name for p in (tmp_path / "out" / "features").iterdir()] == ["mobilenetv2"]
