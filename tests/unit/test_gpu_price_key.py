"""GPUs as torch names them (torch.cuda.get_device_name), mapped to the price table's keys (infra/prices.py)."""

import pytest

from infra.prices import PRICES, gpu_price_key


@pytest.mark.parametrize(("name", "key"), [
    ("NVIDIA H100 80GB HBM3", "H100"), ("NVIDIA H200", "H200"), ("NVIDIA L40S", "L40S"),
    ("NVIDIA A100-SXM4-80GB", "A100-80GB"), ("NVIDIA A100-SXM4-40GB", None), ("Tesla T4", None)])
def test_a_gpu_name_finds_its_price(name, key):
    assert gpu_price_key(name) == key
    assert key is None or key in PRICES["modal_gpu_second"]
