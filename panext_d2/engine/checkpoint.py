"""detectron2's DetectionCheckpointer made safe against interrupted writes.

* Checkpoints and the ``last_checkpoint`` tag are written atomically: into a temporary file
  in the same folder, flushed and fsync'ed, then renamed over the final name. A kill, a crash
  or a full disk during a save leaves the previous files as they were, never a truncated
  file under a checkpoint's name.
* A checkpoint that cannot be read raises :class:`CheckpointReadError` naming the file.
* ``matched_keys`` lists the model's state-dict keys the last load set, so that evaluating
  a model none of whose weights were loaded can be refused (:func:`load_for_evaluation`).
* ``resume_or_load(resume=True)`` falls back, with a warning, from a tagged checkpoint that is
  missing or unreadable (for example written by another tool, or truncated before this
  class existed) to the newest ``model_*.pth`` of the folder that loads.
"""
import glob
import os
from typing import Callable, List

import torch
from detectron2.checkpoint import DetectionCheckpointer

TAG_FILE = "last_checkpoint"


class CheckpointReadError(RuntimeError):
    """A checkpoint file exists but cannot be read (truncated, empty, not a checkpoint)."""


def atomic_write(path: str, write: Callable) -> None:
    """Call ``write(binary_file)`` on a temporary file beside ``path``, make it durable and
    rename it to ``path``. On any error the temporary file is removed and ``path`` is left
    untouched; temporary files of an earlier writer killed before its rename are removed.
    One writer per path (detectron2 saves from the main process only)."""
    folder, name = os.path.split(os.path.abspath(path))
    for stale in glob.glob(os.path.join(folder, f".{glob.escape(name)}.*.tmp")):
        os.remove(stale)  # left by a writer that was killed
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


class SafeCheckpointer(DetectionCheckpointer):
    """DetectionCheckpointer with atomic saves, named read errors and resume fallback."""

    matched_keys: frozenset = frozenset()

    def _load_model(self, checkpoint):
        incompatible = super()._load_model(checkpoint)
        not_set = set(incompatible.missing_keys) | {k for k, *_ in incompatible.incorrect_shapes}
        self.matched_keys = frozenset(self.model.state_dict()) - not_set
        return incompatible

    def save(self, name: str, **kwargs) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        data.update({key: obj.state_dict() for key, obj in self.checkpointables.items()})
        data.update(kwargs)
        basename = f"{name}.pth"
        path = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {path}")
        atomic_write(path, lambda f: torch.save(data, f))
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        atomic_write(
            os.path.join(self.save_dir, TAG_FILE), lambda f: f.write(last_filename_basename.encode())
        )

    def _load_file(self, filename: str):
        try:
            return super()._load_file(filename)
        except Exception as error:
            size = os.path.getsize(filename) if os.path.isfile(filename) else None
            reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            raise CheckpointReadError(
                f"checkpoint {filename} ({size} bytes) cannot be read ({reason}); it is "
                "truncated or not a checkpoint"
            ) from error

    def resume_candidates(self) -> List[str]:
        """The tagged checkpoint first, then every ``model_*.pth`` of the folder, newest first."""
        tagged = self.get_checkpoint_file() if self.has_checkpoint() else ""
        others = glob.glob(os.path.join(self.save_dir, "model_*.pth"))
        others = sorted((p for p in others if os.path.abspath(p) != os.path.abspath(tagged)),
                        key=os.path.getmtime, reverse=True)
        return ([tagged] if tagged else []) + others

    def resume_or_load(self, path: str, *, resume: bool = True):
        candidates = self.resume_candidates() if resume else []
        if not candidates:
            return self.load(path, checkpointables=[])
        for candidate in candidates:
            if not os.path.isfile(candidate):
                self.logger.warning(f"Cannot resume from {candidate}: the file does not exist")
                continue
            try:
                loaded = self.load(candidate)
            except CheckpointReadError as error:
                self._parsed_url_during_load = None  # DetectionCheckpointer.load did not finish
                self.logger.warning(f"Cannot resume from {candidate}: {error}")
                continue
            if candidate != candidates[0]:
                self.logger.warning(f"Resumed from {candidate}, the newest checkpoint that loads")
            return loaded
        raise CheckpointReadError(
            f"--resume: no checkpoint in {self.save_dir} loads (tried {candidates}); remove "
            f"{os.path.join(self.save_dir, TAG_FILE)} to start from MODEL.WEIGHTS instead"
        )


def load_for_evaluation(model, weights: str, save_dir: str, *, resume: bool, allow_random: bool):
    """Load ``weights`` (or, with ``resume``, the last checkpoint of ``save_dir``) into
    ``model`` for evaluation. No checkpoint, or one that sets none of the model's parameters
    (one of another architecture), is refused unless ``allow_random``; a missing file is named,
    with the model's ``weights_hint`` (how to produce it) when it has one."""
    checkpointer = SafeCheckpointer(model, save_dir=save_dir)
    hint = getattr(model, "weights_hint", "")
    resuming = resume and checkpointer.has_checkpoint()
    if weights and not resuming and not os.path.isfile(weights) and "://" not in weights:
        raise FileNotFoundError(f"MODEL.WEIGHTS={weights!r} does not exist" + (f"; {hint}" if hint else ""))
    loaded = checkpointer.resume_or_load(weights, resume=resume)
    parameters = {name for name, _ in model.named_parameters()}
    if not weights and not resuming:
        if not allow_random:
            raise ValueError(
                "--eval-only without MODEL.WEIGHTS would evaluate random weights; give a "
                "checkpoint" + (f" ({hint})" if hint else "") + ", or pass --eval-random-weights"
            )
        checkpointer.logger.warning("Evaluating without MODEL.WEIGHTS: parameters as built")
    elif not allow_random and parameters and not parameters & checkpointer.matched_keys:
        raise ValueError(
            f"MODEL.WEIGHTS={weights!r} sets none of the model's {len(parameters)} parameters "
            "(a checkpoint of another architecture?); evaluation would measure random weights. "
            "Give a checkpoint of this model, or pass --eval-random-weights to do it on purpose."
        )
    return loaded
