from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def parley_overrides(tmp_path: Path) -> dict[str, Any]:
    """Images in messages (a vision model, files stored in the test's folder), and no title
    requests after the first reply."""
    return {"llm_vision": True, "auto_title": False, "file_storage_dir": str(tmp_path / "files")}
