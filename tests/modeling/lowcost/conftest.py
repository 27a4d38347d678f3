import pytest

from tests.modeling.lowcost.variants import make_lowcost_cfg


@pytest.fixture
def lowcost_cfg():
    return make_lowcost_cfg
