"""python -m experiments.studies.finetune_steps --data DATA --base CKPT --out DIR  # fine-tune.

Fine-tune a shipped VLA model on step-level demonstrations of the long-horizon tabletop.

The shipped policies learnt pick-and-place in scenes where the other blocks are distractors
lying anywhere; in ``TabletopRearrange-v0`` they must place a block while other blocks already
sit in zones, and they complete only about half of those steps. This study continues training
a shipped model (its weights, normalization statistics and instruction embeddings kept) on
demonstrations recorded in those scenes with one-step instructions:

    robodecode collect --env robodecode/TabletopRearrange-v0 --episodes 200 --noise 0.1
        --env-kwargs '{"step_instructions": true}' --workers 2 --out DATA

and writes an ordinary checkpoint folder that ``robodecode eval-loop --skill`` takes. The
learning rate is lower than training from scratch and the schedule short, so the model keeps
what it knew.

``--rtc-train-max N`` fine-tunes an OFT model with training-time real-time chunking
(``VLAConfig.rtc_train_max``): the committed-action projection is added at zero, so the model
starts exactly as the base and learns to continue up to ``N`` committed steps.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from envs.files import write_json_atomic


def finetune(data: Path, base: Path, out: Path, steps: int = 1500, batch_size: int = 64,
             lr: float = 3e-4, seed: int = 0, threads: int = 1, progress: bool = True,
             device: str = "cpu", rtc_train_max: int | None = None) -> dict:
    """Continue training the model in ``base`` on ``data``; the result is saved to ``out``.

    Returns:
        The last training record (step, losses) plus the base and data paths.
    """
    import torch

    from vla.checkpoint import from_pretrained
    from vla.data import load_split
    from vla.train import TrainConfig, Trainer

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = from_pretrained(base, device=device)
    if rtc_train_max is not None:
        model = with_rtc_training(model, rtc_train_max)
    cfg = model.config
    split = load_split(data, cfg.horizon, cfg.cameras, cfg.image_size, seed=seed)
    missing = [t for t in set(split.train.instructions) if t not in model.instructions]
    if missing:
        raise ValueError(f"{base} has no cached embedding for {missing[:2]}; embed them first "
                         "(robodecode info CKPT --add-instructions FILE)")
    model.train()
    trainer = Trainer(model, split.train, split.val,
                      TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup=50,
                                  seed=seed, eval_every=max(steps // 3, 1)), out)
    history = trainer.run(progress=progress)
    if not history or history[-1]["step"] != trainer.step:
        trainer.save()
    summary = {"base": str(base), "data": str(data), "device": device,
               "train_items": len(split.train),
               **(history[-1] if history else {})}
    write_json_atomic(Path(out) / "finetune.json", summary)
    return summary


def with_rtc_training(model, rtc_train_max: int):
    """``model`` (an OFT model) with training-time RTC on; its chunks are unchanged until trained.

    Raises:
        ValueError: If the model is not an OFT model or ``rtc_train_max`` is out of range.
    """
    from dataclasses import replace

    from torch import nn

    from vla.model import VLAModel

    new = VLAModel(replace(model.config, rtc_train_max=rtc_train_max),
                   instructions=model.instructions)
    keys = new.load_state_dict(model.state_dict(), strict=False)
    if keys.unexpected_keys or any(not k.startswith("head.prefix_in.") for k in keys.missing_keys):
        raise ValueError(f"state mismatch: {keys}")
    if new.head.prefix_in is not None:
        nn.init.zeros_(new.head.prefix_in.weight)
        nn.init.zeros_(new.head.prefix_in.bias)
    return new.to(next(model.parameters()).device)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="step-level demos (LeRobot v3)")
    p.add_argument("--base", type=Path, required=True, help="model folder to start from")
    p.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--rtc-train-max", type=int, default=None,
                   help="OFT only: fine-tune with training-time RTC up to this many steps")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    args = p.parse_args(argv)
    print(json.dumps(finetune(args.data, args.base, args.out, args.steps, args.batch_size,
                              args.lr, args.seed, args.threads, args.progress, args.device,
                              args.rtc_train_max),
                     indent=2))


if __name__ == "__main__":
    main()
