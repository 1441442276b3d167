"""Train the shipped default checkpoints (four heads + the distilled AR head) for several seeds.

Usage: python experiments/checkpoints/make_default.py --archive DIR --out DIR --device cuda

This is ``robodecode train`` / ``robodecode distill`` (the same ``vla.train.Trainer`` and
``vla.distill.distill`` code) fed from a *decoded chunk archive* instead of the LeRobot
dataset folder, so that it runs on a machine without ``pyarrow`` (the GPU box): the archive is
``chunks_all.npz`` (every frame of the dataset, images already resized to the model size),
``chunks_meta.json`` (instructions, normalization stats and, per seed, the episode split that
``envs.dataset_reader.split_episodes`` gives) and ``instructions.safetensors`` (MiniLM
embeddings of every train and held-out instruction). ``experiments/checkpoints/COMMANDS.md``
records how the archive and the shipped checkpoints were made.

Each (seed, head) trains in its own process; the AR head of each seed is then distilled.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HEADS = ("ar", "diffusion", "flow", "oft")
EXPORT_FILES = ("config.json", "model.safetensors", "stats.json", "instructions.safetensors",
                "train_state.json", "early_exit.json")


def load_archive(archive: Path, seed: int):
    """The :class:`vla.data.Split` of ``seed`` from a decoded chunk archive."""
    import numpy as np
    import torch

    from vla.data import ChunkTensors, Split

    meta = json.loads((archive / "chunks_meta.json").read_text())
    arrays = np.load(archive / "chunks_all.npz")
    episode = torch.from_numpy(arrays["episode"])
    cameras = meta.get("cameras", ["image"])  # archives before cameras were recorded: one

    def part(episodes: list[int]) -> ChunkTensors:
        idx = torch.nonzero(torch.isin(episode, torch.tensor(episodes))).flatten()
        old = torch.from_numpy(arrays["instr_index"])[idx]
        used = sorted(set(old.tolist()))
        remap = {o: n for n, o in enumerate(used)}
        return ChunkTensors(
            images={cam: torch.from_numpy(arrays[cam])[idx] for cam in cameras},
            state=torch.from_numpy(arrays["state"])[idx],
            actions=torch.from_numpy(arrays["actions"])[idx],
            is_pad=torch.from_numpy(arrays["is_pad"])[idx],
            instr_index=torch.tensor([remap[i] for i in old.tolist()]),
            instructions=[meta["instructions"][o] for o in used], episode=episode[idx])

    split = meta["splits"].get(str(seed)) or episode_split(meta["episodes"], seed)
    stats = {k: {n: np.asarray(v, np.float32) for n, v in d.items()}
             for k, d in meta["stats"].items()}
    return Split(part(split["train"]), part(split["val"]), stats, meta["action_dim"],
                 meta["state_dim"])


def episode_split(n_eps: int, seed: int) -> dict[str, list[int]]:
    """``envs.dataset_reader.split_episodes`` with val_fraction 0.1 (no pyarrow needed)."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(n_eps)
    n_val = min(max(int(round(0.1 * n_eps)), 1), n_eps - 1)
    return {"train": sorted(int(i) for i in order[n_val:]),
            "val": sorted(int(i) for i in order[:n_val])}


_ENVS: dict = {}  # one env per id and worker process: LIBERO scenes take seconds to build


def _record(env_id: str, seed: int, size: int, per_layout: int = 1, attempt: int = 0,
            cameras: tuple[str, ...] = ("image",)) -> dict:
    """One expert episode, recorded as ``envs.lerobot_dataset.record_episode`` does.

    With ``per_layout > 1`` the layout of ``seed`` is kept and the target is the
    ``attempt``-th of its ``envs.layout_targets.layout_targets`` (as ``collect
    --targets-per-layout`` does). The env is built with the keyword arguments its class asks
    for when demonstrations are recorded (``envs.ids.demo_env_kwargs``: LIBERO samples layouts
    instead of using the official evaluation states) and kept for the worker's next episodes.
    """
    import gymnasium as gym
    import numpy as np
    import torch
    import torch.nn.functional as F

    import envs  # noqa: F401 - registers the ids
    from envs.experts import make_expert
    from envs.ids import demo_env_kwargs
    from envs.layout_targets import layout_targets

    if env_id not in _ENVS:
        _ENVS[env_id] = gym.make(env_id, **demo_env_kwargs(env_id))
    env = _ENVS[env_id]
    options = None
    if per_layout > 1:
        options = {"target": layout_targets(env, seed, per_layout)[attempt]}
    obs, info = env.reset(seed=seed, options=options)
    expert = make_expert(env, seed=seed)
    expert.reset()
    low, high = env.action_space.low, env.action_space.high
    images: dict[str, list] = {cam: [] for cam in cameras}
    states, actions = [], []
    instruction, done = str(obs["instruction"]), False
    while not done:
        action = np.clip(np.asarray(expert.act(obs), dtype=np.float32), low, high)
        for cam in cameras:
            images[cam].append(obs[cam])
        states.append(np.asarray(obs["state"], dtype=np.float32))
        actions.append(action)
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    out = {}
    for cam, frames in images.items():
        x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()
        if x.shape[-1] != size:  # area resize to the model size, as vla.data.load_chunks does
            x = F.interpolate(x, size=(size, size), mode="area")
        out[cam] = x.permute(0, 2, 3, 1).round().clamp(0, 255).to(torch.uint8).numpy()
    return {**out, "state": np.stack(states), "action": np.stack(actions),
            "instruction": instruction, "success": bool(info.get("is_success", False))}


def collect_archive(args: argparse.Namespace) -> None:
    """Collect ``--collect`` expert episodes straight into a decoded chunk archive.

    Chunks follow ``envs.dataset_reader.ActionChunkDataset``: the actions of frames
    ``t .. t+H-1`` with the episode's last action repeated (and flagged as padding) past its
    end; statistics are the per-dimension 1%/99% action quantiles and state mean/std.
    """
    import multiprocessing as mp

    import numpy as np

    k = args.targets_per_layout
    cameras = tuple(args.cameras)
    jobs = [(args.env, args.collect_seed + i // k, args.image_size, k, i % k, cameras)
            for i in range(args.collect)]
    with mp.get_context("spawn").Pool(args.workers) as pool:
        episodes = pool.starmap(_record, jobs, chunksize=4)
    episodes = [e for e in episodes if e["success"]]
    h = args.horizon
    texts = sorted({e["instruction"] for e in episodes})
    cols: dict[str, list] = {k: [] for k in (*cameras, "state", "actions", "is_pad",
                                             "instr_index", "episode")}
    for index, e in enumerate(episodes):
        n = len(e["action"])
        steps = np.arange(n)[:, None] + np.arange(h)[None]
        for cam in cameras:
            cols[cam].append(e[cam])
        cols["state"].append(e["state"])
        cols["actions"].append(e["action"][np.minimum(steps, n - 1)])
        cols["is_pad"].append(steps > n - 1)
        cols["instr_index"].append(np.full(n, texts.index(e["instruction"])))
        cols["episode"].append(np.full(n, index))
    arrays = {k: np.concatenate(v) for k, v in cols.items()}
    args.archive.mkdir(parents=True, exist_ok=True)
    np.savez(args.archive / "chunks_all.npz", **arrays)
    n_eps, actions, state = len(episodes), np.concatenate([e["action"] for e in episodes]), \
        arrays["state"]
    splits = {str(seed): episode_split(n_eps, seed) for seed in args.seeds}
    stats = {"action": {"q01": np.quantile(actions, 0.01, 0).tolist(),
                        "q99": np.quantile(actions, 0.99, 0).tolist()},
             "state": {"mean": state.mean(0).tolist(), "std": state.std(0).tolist()}}
    meta = {"instructions": texts, "cameras": list(cameras), "action_dim": int(actions.shape[1]),
            "state_dim": int(state.shape[1]), "env_id": args.env, "episodes": n_eps,
            "episode_seeds": [args.collect_seed, args.collect_seed + -(-args.collect // k)],
            "targets_per_layout": k,
            "splits": splits, "stats": stats}
    (args.archive / "chunks_meta.json").write_text(json.dumps(meta))
    print(f"collected {n_eps} episodes, {len(arrays['state'])} frames", flush=True)


def train_job(args: argparse.Namespace, head: str, seed: int) -> None:
    """One ``robodecode train`` run (same code path as ``vla.pipeline.train_head``)."""
    import torch

    from vla.config import preset
    from vla.encoders import InstructionCache
    from vla.model import VLAModel
    from vla.train import TrainConfig, Trainer

    torch.set_num_threads(1)
    split = load_archive(args.archive, seed)
    shared = InstructionCache(args.archive / "instructions.safetensors", allow_encoder=False)
    from vla.config import parse_overrides

    overrides = {"cameras": tuple(split.train.images),  # the archive's cameras
                 **parse_overrides(args.set or [])}
    cfg = preset(args.preset, head=head, horizon=args.horizon, action_dim=split.action_dim,
                 state_dim=split.state_dim, **overrides)
    torch.manual_seed(seed)
    model = VLAModel(cfg, instructions=InstructionCache(allow_encoder=False))
    for t in shared.instructions:  # train + held-out instructions: no MiniLM at eval time
        model.instructions.put(t, shared.embed([t])[0])
    model.set_stats(split.stats, instructions=split.train.instructions)
    model.to(args.device)
    tcfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                       warmup=args.warmup, ema=args.ema, seed=seed, eval_every=args.eval_every,
                       augment_shift=args.augment_shift)
    trainer = Trainer(model, split.train, split.val, tcfg, args.out / f"seed{seed}" / head)
    if trainer.resume():  # a run cut short (device-time limit) goes on from its last save
        print(f"resumed {head} seed {seed} at step {trainer.step}", flush=True)
    history = trainer.run(progress=False)
    print(json.dumps({"head": head, "seed": seed, **history[-1]}), flush=True)


def distill_job(args: argparse.Namespace, seed: int) -> None:
    """One ``robodecode distill`` run of the seed's AR checkpoint."""
    import torch

    from vla.checkpoint import from_pretrained
    from vla.distill import DistillConfig, distill

    torch.set_num_threads(1)
    split = load_archive(args.archive, seed)
    folder = args.out / f"seed{seed}"
    teacher = from_pretrained(folder / "ar", allow_encoder=False).to(args.device)
    cfg = DistillConfig(steps=args.distill_steps, batch_size=args.batch_size,
                        lr=args.distill_lr, n_trajectories=args.n_trajectories, seed=seed,
                        ar_weight=args.distill_ar_weight,
                        gt_label_prob=args.distill_gt_label_prob,
                        keep_input_noise=args.distill_keep_input_noise,
                        augment_shift=args.distill_augment_shift,
                        teacher_mix=args.distill_teacher_mix)
    summary = distill(teacher, split.train, split.val, cfg, folder / "cjacobi", progress=False)
    brief = {k: summary[k] for k in ("teacher_mean_passes_train",) if k in summary}
    for who in ("teacher_sweep", "student_sweep"):
        if who in summary:
            brief[who] = summary[who].get("chosen")
    print(json.dumps({"distill": seed, **brief, "last": summary["history"][-1]}), flush=True)


def _spawn(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, *argv])


def _device_args(args: argparse.Namespace, i: int) -> list[str]:
    """Spread jobs over the GPUs round-robin when ``--device cuda`` names no index."""
    if args.device != "cuda":
        return []
    import torch

    n = torch.cuda.device_count()
    return ["--device", f"cuda:{i % n}"] if n > 1 else []


def main() -> None:
    """Parse arguments; run one job, or all of them as parallel processes."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archive", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--device", default="cuda")
    p.add_argument("--preset", default="cpu")
    p.add_argument("--horizon", type=int, default=8)
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--augment-shift", type=int, default=4)
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="VLAConfig override (JSON value), repeatable, as robodecode train --set")
    p.add_argument("--heads", nargs="+", default=list(HEADS))
    p.add_argument("--distill-steps", type=int, default=3000)
    p.add_argument("--distill-lr", type=float, default=3e-4)
    p.add_argument("--n-trajectories", type=int, default=8192)
    p.add_argument("--distill-ar-weight", type=float, default=10.0)
    p.add_argument("--distill-gt-label-prob", type=float, default=0.5)
    p.add_argument("--distill-keep-input-noise", action="store_true",
                   help="corrupt the AR term's inputs with the teacher's ar_input_noise")
    p.add_argument("--distill-augment-shift", type=int, default=0,
                   help="random-shift image augmentation during distillation (0: off)")
    p.add_argument("--distill-teacher-mix", type=float, default=0.0,
                   help="move the student this far back towards the teacher after training")
    p.add_argument("--collect", type=int, default=0,
                   help="collect this many expert episodes into --archive first")
    p.add_argument("--collect-seed", type=int, default=1_000_000)
    p.add_argument("--targets-per-layout", type=int, default=1,
                   help="episodes per layout, each under another target (counterfactual demos)")
    p.add_argument("--env", default="robodecode/TabletopPickPlace-v0")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--cameras", nargs="+", default=["image"],
                   help="observation keys to record (LIBERO: image wrist_image)")
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--job", default=None, help="internal: train:HEAD:SEED or distill:SEED")
    args = p.parse_args()
    if args.job:
        kind, *rest = args.job.split(":")
        if kind == "train":
            train_job(args, rest[0], int(rest[1]))
        else:
            distill_job(args, int(rest[0]))
        return
    if args.collect:
        collect_archive(args)
        return
    base = list(sys.argv[1:])
    jobs = [f"train:{h}:{s}" for s in args.seeds for h in args.heads]
    tic = time.time()
    procs = [_spawn([*base, *_device_args(args, i), "--job", job]) for i, job in enumerate(jobs)]
    codes = [q.wait() for q in procs]
    print(f"training done in {time.time() - tic:.0f} s, exit codes {codes}", flush=True)
    if "ar" not in args.heads or args.distill_steps <= 0:
        return
    procs = [_spawn([*base, *_device_args(args, i), "--job", f"distill:{s}"])
             for i, s in enumerate(args.seeds)]
    codes = [q.wait() for q in procs]
    print(f"distillation done in {time.time() - tic:.0f} s, exit codes {codes}", flush=True)


if __name__ == "__main__":
    main()
