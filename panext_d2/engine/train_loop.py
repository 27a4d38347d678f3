"""The per-iteration training step: gradient accumulation and mixed precision on top of
detectron2's SimpleTrainer."""
import time
from contextlib import nullcontext

import torch
from detectron2.engine import SimpleTrainer
from torch.nn.parallel import DistributedDataParallel


class AccumulatingTrainer(SimpleTrainer):
    """One iteration = ``accumulate_steps`` forward/backward passes over consecutive
    mini-batches, then one optimizer update (effective batch = batch x steps).

    Losses are divided by the number of steps, so the accumulated gradient is the mean over
    the effective batch; under DDP, gradients are all-reduced once per iteration (``no_sync``
    on the earlier passes). With ``amp``, the forward runs under ``torch.autocast``: float16
    with a gradient scaler on CUDA, bfloat16 (no scaler needed) on CPU.
    """

    def __init__(self, model, data_loader, optimizer, accumulate_steps=1, amp=False,
                 precision=torch.float16):
        super().__init__(model, data_loader, optimizer)
        if accumulate_steps < 1:
            raise ValueError(f"SOLVER.ACCUMULATE_STEPS must be >= 1, got {accumulate_steps}")
        self.accumulate_steps = accumulate_steps
        device_type = "cuda" if next(model.parameters()).is_cuda else "cpu"
        if device_type == "cpu":
            precision = torch.bfloat16
        self.autocast = dict(device_type=device_type, dtype=precision, enabled=amp)
        self.grad_scaler = torch.amp.GradScaler(
            device_type, enabled=amp and precision == torch.float16
        )

    def _sync_context(self, micro_step):
        last = micro_step == self.accumulate_steps - 1
        if last or not isinstance(self.model, DistributedDataParallel):
            return nullcontext()
        return self.model.no_sync()

    def run_step(self):
        assert self.model.training, "[AccumulatingTrainer] model was changed to eval mode!"
        self.optimizer.zero_grad()
        data_time = 0.0
        mean_losses = {}
        for micro_step in range(self.accumulate_steps):
            start = time.perf_counter()
            data = next(self._data_loader_iter)
            data_time += time.perf_counter() - start
            with self._sync_context(micro_step):
                with torch.autocast(**self.autocast):
                    loss_dict = self.model(data)
                    if isinstance(loss_dict, torch.Tensor):
                        loss_dict = {"total_loss": loss_dict}
                    losses = sum(loss_dict.values())
                self.grad_scaler.scale(losses / self.accumulate_steps).backward()
            for name, value in loss_dict.items():
                mean_losses[name] = mean_losses.get(name, 0.0) + value.detach() / self.accumulate_steps
        self.after_backward()
        self._write_metrics(mean_losses, data_time)
        self.grad_scaler.step(self.optimizer)
        self.grad_scaler.update()

    def state_dict(self):
        ret = super().state_dict()
        ret["grad_scaler"] = self.grad_scaler.state_dict()
        return ret

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        if "grad_scaler" in state_dict:
            self.grad_scaler.load_state_dict(state_dict["grad_scaler"])
