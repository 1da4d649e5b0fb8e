"""The docs a user needs stay true: every setting in the README, every spec operation in the
compatibility table."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from threadline.config import Settings

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT.parent / "shared" / "reference" / "openai-assistants-openapi.yaml"


def test_every_setting_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [
        f"THREADLINE_{f.name.upper()}"
        for f in dataclasses.fields(Settings)
        if f"`THREADLINE_{f.name.upper()}`" not in readme
    ]
    assert missing == []


def test_every_spec_operation_is_in_the_compatibility_table() -> None:
    if not SPEC.exists():
        pytest.skip(f"the reference spec is not beside the repository ({SPEC})")
    paths = re.findall(r"^  (/[^:]+):$", SPEC.read_text(), flags=re.MULTILINE)
    assert len(paths) >= 20, "the spec's paths were read"
    table = (ROOT / "docs" / "compatibility.md").read_text()
    missing = [path for path in paths if f"/v1{path}" not in table]
    assert missing == []
