from pathlib import Path

import pytest

SHARED_MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"


@pytest.fixture(scope="session")
def shared_media() -> Path:
    """The real test films in ../shared/media; skips where a clone has no ../shared beside it."""
    if not SHARED_MEDIA.is_dir():
        pytest.skip(f"test media not found at {SHARED_MEDIA} (it lives in ../shared/media)")
    return SHARED_MEDIA
