"""Config keys shared by every model family: data pipeline choice, optimizers, schedules,
gradient accumulation, checkpoint period as a fraction, AMP precision."""
from detectron2.config import CfgNode as CN


def add_common_config(cfg):
    # Dataset mapper, looked up by name in panext_d2.data.MAPPER_REGISTRY.
    # "default" is detectron2's DatasetMapper (boxes, masks, sem_seg files).
    cfg.INPUT.DATASET_MAPPER_NAME = "default"

    # Optimizer: SGD | AdamW | RAdam | RMSProp | Ranger21 (panext_d2/solver/optimizers.py).
    cfg.SOLVER.OPTIMIZER = "SGD"
    cfg.SOLVER.BETAS = (0.9, 0.999)  # AdamW, RAdam, Ranger21
    cfg.SOLVER.EPS = 1e-8  # AdamW, RAdam, RMSProp, Ranger21

    cfg.SOLVER.RMSPROP = CN()
    cfg.SOLVER.RMSPROP.ALPHA = 0.9  # decay of the squared-gradient average (TF OD API: 0.9)
    # TF-style RMSProp (Kolhatkar (2020) trains with TensorFlow's): epsilon inside the square root,
    # squared-gradient average initialised to 1, LR applied inside the momentum buffer
    # (timm's RMSpropTF). False gives torch.optim.RMSprop.
    cfg.SOLVER.RMSPROP.TF_STYLE = False

    cfg.SOLVER.RANGER21 = CN()
    # Who owns the learning rate while Ranger21 is used (docs/DESIGN.md §1):
    #  "ranger21":   Ranger21's internal linear warm-up / linear warm-down is active, and
    #                detectron2's scheduler is forced to a constant multiplier of 1;
    #  "detectron2": Ranger21's schedule is disabled and SOLVER.LR_SCHEDULER_NAME applies
    #                ("Ranger21LR" reproduces Ranger21's own schedule under detectron2).
    cfg.SOLVER.RANGER21.LR_OWNER = "ranger21"
    cfg.SOLVER.RANGER21.WARMUP_ITERS = -1  # -1: Ranger21's default rule
    cfg.SOLVER.RANGER21.WARMDOWN_ITERS = -1  # -1: Ranger21's default (last 28% of the run)
    cfg.SOLVER.RANGER21.WARMDOWN_MIN_LR = 3e-5
    # Adaptive gradient clipping value; Ranger21 has no switch for it, so "off" is +inf.
    # The thesis replaces it with standard clipping (SOLVER.CLIP_GRADIENTS).
    cfg.SOLVER.RANGER21.AGC_CLIPPING_VALUE = float("inf")
    cfg.SOLVER.RANGER21.BETA0 = 0.9  # positive-negative momentum amplitude
    cfg.SOLVER.RANGER21.LOOKAHEAD_MERGE_TIME = 5
    cfg.SOLVER.RANGER21.LOOKAHEAD_BLENDING_ALPHA = 0.5
    cfg.SOLVER.RANGER21.NORM_LOSS_FACTOR = 1e-4

    # LR schedules added to detectron2's (WarmupMultiStepLR, WarmupCosineLR with
    # SOLVER.BASE_LR_END as the cosine floor, WarmupStepWithFixedGammaLR):
    #  "WarmupExponentialStepLR": lr0 * GAMMA ** floor(t / DECAY_STEPS)  (Kolhatkar (2020))
    #  "Ranger21LR": Ranger21's linear warm-up / warm-down (SOLVER.RANGER21.*)
    cfg.SOLVER.EXPONENTIAL_DECAY = CN()
    cfg.SOLVER.EXPONENTIAL_DECAY.GAMMA = 0.75
    cfg.SOLVER.EXPONENTIAL_DECAY.DECAY_STEPS = 10000

    # Gradient accumulation: one iteration (the unit of MAX_ITER, STEPS, CHECKPOINT_PERIOD and
    # the LR schedule) is one optimizer update over ACCUMULATE_STEPS mini-batches, so the
    # effective batch is IMS_PER_BATCH * ACCUMULATE_STEPS.
    cfg.SOLVER.ACCUMULATE_STEPS = 1

    # When > 0, overrides SOLVER.CHECKPOINT_PERIOD with round(fraction * MAX_ITER); a separate
    # key because yacs will not let the integer CHECKPOINT_PERIOD take a float.
    cfg.SOLVER.CHECKPOINT_PERIOD_FRACTION = 0.0

    # AMP precision: "float16" (with a gradient scaler) or "bfloat16". On CPU, autocast only
    # supports bfloat16, which is used whatever this says.
    cfg.SOLVER.AMP.PRECISION = "float16"
