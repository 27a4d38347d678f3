import pytest

from panext_d2.data.catalog.coco_samples import register_coco_samples
from panext_d2.data.catalog.synthetic import register_all_synthetic
from panext_d2.data.catalog.synthetic.cache import CACHE_ENV


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """An empty dataset cache for one test ($PANEXT_D2_CACHE points at it)."""
    root = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(root))
    return root


@pytest.fixture(scope="session")
def registered_cache(tmp_path_factory):
    """Every default name re-registered with its derived files in a session cache (the
    default sets are generated once, by the first test that loads them)."""
    root = tmp_path_factory.mktemp("panext_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(root))
        register_all_synthetic()
        register_coco_samples()
        yield root
    register_all_synthetic()
    register_coco_samples()
