import copy

import pytest
import torch
from detectron2.utils.events import EventStorage

from panext_d2.engine import AccumulatingTrainer


class _Regressor(torch.nn.Module):
    """Returns the batch-mean squared error, as detectron2 models return mean losses."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(3, 1)
        self.seen_dtypes = []

    def forward(self, batch):
        x = torch.stack([d["x"] for d in batch])
        y = torch.stack([d["y"] for d in batch])
        out = self.fc(x)
        self.seen_dtypes.append(out.dtype)
        return {"loss_mse": ((out.float() - y) ** 2).mean()}


def _samples(n):
    g = torch.Generator().manual_seed(3)
    xs = torch.randn(n, 3, generator=g)
    return [{"x": x, "y": x.sum(0, keepdim=True)} for x in xs]


def _loader(samples, batch):
    def gen():
        while True:
            for i in range(0, len(samples), batch):
                yield samples[i : i + batch]

    return gen()


def _one_update(batch, steps, amp=False):
    model = _Regressor()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = AccumulatingTrainer(model, _loader(_samples(8), batch), opt, steps, amp=amp)
    with EventStorage(0) as storage:
        trainer.storage = storage
        trainer.iter = 0
        trainer.run_step()
    return model, storage


def test_accumulated_update_equals_one_large_batch():
    accumulated, accumulated_log = _one_update(batch=2, steps=4)
    large, large_log = _one_update(batch=8, steps=1)
    for a, b in zip(accumulated.parameters(), large.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    # The logged loss is the mean over the micro-batches, i.e. the large batch's loss.
    assert accumulated_log.history("total_loss").latest() == pytest.approx(
        large_log.history("total_loss").latest(), rel=1e-6
    )


def test_accumulation_consumes_steps_batches_per_iteration():
    model = _Regressor()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = AccumulatingTrainer(model, _loader(_samples(8), 2), opt, accumulate_steps=3)
    with EventStorage(0) as storage:
        trainer.storage = storage
        trainer.iter = 0
        trainer.run_step()
    assert len(model.seen_dtypes) == 3


def test_amp_on_cpu_runs_in_bfloat16():
    model, _ = _one_update(batch=4, steps=1, amp=True)
    assert model.seen_dtypes == [torch.bfloat16]
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_invalid_accumulate_steps():
    model = _Regressor()
    with pytest.raises(ValueError, match="ACCUMULATE_STEPS"):
        AccumulatingTrainer(model, _loader(_samples(4), 2), torch.optim.SGD(model.parameters(), 0.1), 0)
