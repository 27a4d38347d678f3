"""The CPU (gloo) DDP path: wrap without device_ids, gradients averaged across ranks, and
accumulation syncing once per iteration."""
import gc
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from detectron2.utils import comm
from detectron2.utils.events import EventStorage

from panext_d2.engine import AccumulatingTrainer, wrap_ddp

pytestmark = pytest.mark.slow  # trains / launches processes: see README, Running tests


class _Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(2, 1, bias=False)

    def forward(self, batch):
        x = torch.stack(batch)
        return {"loss": self.fc(x).sum() / len(batch)}


def _worker(rank, world, port, result_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    comm.create_local_process_group(world)
    torch.set_num_threads(1)
    model = wrap_ddp(_Linear())
    assert isinstance(model, torch.nn.parallel.DistributedDataParallel)
    assert model.device_ids is None
    # Rank r sees inputs (r+1) * [1, 2] and (r+1) * [3, 4]: mean gradient over ranks and
    # micro-batches is mean over r of (r+1) * [2, 3].
    data = iter([[torch.tensor([1.0, 2.0]) * (rank + 1)], [torch.tensor([3.0, 4.0]) * (rank + 1)]])
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    trainer = AccumulatingTrainer(model, data, opt, accumulate_steps=2)
    with EventStorage(0) as storage:
        trainer.storage = storage
        trainer.iter = 0
        trainer.run_step()
    torch.save(model.module.fc.weight.detach(), os.path.join(result_dir, f"rank{rank}.pt"))
    # Tear down in order: both ranks done communicating, DDP's reducer gone, then the group
    # (a reducer outliving its gloo group can abort the process at exit).
    dist.barrier()
    del trainer, opt, model
    gc.collect()
    dist.destroy_process_group()


def test_cpu_ddp_accumulation_averages_gradients_across_ranks(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    torch.manual_seed(0)
    initial = torch.nn.Linear(2, 1, bias=False).weight.detach()
    mean_grad = torch.tensor([2.0, 3.0]) * (1 + 2) / 2
    for rank in range(2):
        weight = torch.load(tmp_path / f"rank{rank}.pt")
        assert torch.allclose(weight, initial - mean_grad, atol=1e-6), (rank, weight)
