#!/usr/bin/env python
"""Train or evaluate any panext_d2 model.

    python train_net.py --config-file configs/panext_3x.yaml --num-gpus 4
    python train_net.py --config-file <cfg> --eval-only MODEL.WEIGHTS <checkpoint>
    python train_net.py --config-file <cfg> --resume          # continue from last_checkpoint
    python train_net.py --config-file <cfg> --eval-only --eval-random-weights  # on purpose
"""
from detectron2.engine import default_argument_parser, default_setup, launch

from panext_d2 import Trainer, get_panext_cfg
from panext_d2.engine import load_for_evaluation


def setup(args):
    cfg = get_panext_cfg(args.config_file, args.opts)
    cfg.freeze()
    default_setup(cfg, args)
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        load_for_evaluation(model, cfg.MODEL.WEIGHTS, cfg.OUTPUT_DIR, resume=args.resume,
                            allow_random=args.eval_random_weights)
        return Trainer.test(cfg, model)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    parser = default_argument_parser()
    parser.add_argument("--eval-random-weights", action="store_true",
                        help="with --eval-only: evaluate even if MODEL.WEIGHTS sets no parameter")
    args = parser.parse_args()
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
