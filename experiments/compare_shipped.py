"""The shipped checkpoint set inside a comparison: found by content hash, reported on its own.

Usage: ``attach_shipped(result, out)`` sets ``result["shipped"]`` (None when no seed ships)

A comparison may pool several training seeds while only one set ships
(``experiments/checkpoints/<Env>/seed<S>``). The training seed whose weights equal the shipped
ones, hash for hash, gets its own rows (its part of the pooled episodes), its own paired tests
against AR, and, where the pooled ``compare.json`` predates per-seed passes, the passes of a
comparison of the shipped set alone kept in ``OUT/shipped/`` (with the episode-by-episode
agreement of the two).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from experiments.compare_checkpoints import fingerprint, models_of
from experiments.compare_config import (
    CONDITIONS,
    GPU_TIMING,
    REPO,
    SHIPPED,
    SHIPPED_RUN,
    display,
    env_folder,
)
from experiments.compare_rows import pct, runs_from_episodes, success_cell, vs_baseline


def shipped_folder(env_id: str, seed: int) -> Path:
    """Where the shipped checkpoint set of training seed ``seed`` lives (it may not exist)."""
    return SHIPPED / env_folder(env_id) / f"seed{seed}"


def shipped_seed(env_id: str, models: dict[str, dict[str, str]]) -> int | None:
    """The training seed whose checkpoints are, weight for weight, the shipped set (or None)."""
    from policies.vla_policy import resolve_checkpoint

    for seed, by_decoder in sorted(models.items(), key=lambda x: int(x[0])):
        folder = shipped_folder(env_id, int(seed))
        if not by_decoder or not folder.is_dir():
            continue
        try:
            same = all(fingerprint(resolve_checkpoint(folder, d)) == h
                       for d, h in by_decoder.items())
        except (ValueError, OSError):
            same = False
        if same:
            return int(seed)
    return None


def recorded_models(result: dict[str, Any], out: Path) -> dict[str, dict[str, str]]:
    """Content hashes of a ``compare.json``'s checkpoints, also for files that predate them.

    Newer files record ``models``. For older ones: the checkpoint folders that still exist are
    hashed, and the first training seed's hashes come from the results folder's
    ``GPU_TIMING`` file when that timing was merged into every row (``merge_gpu_timing`` merges
    a decoder only when its hash equals the evaluated checkpoint's).
    """
    if result.get("models"):
        return result["models"]
    decoders = [r["decoder"] for r in result["rows"]]
    models: dict[str, dict[str, str]] = {}
    for seed, folder in (result.get("checkpoints") or {}).items():
        path = Path(folder) if Path(folder).is_absolute() else REPO / folder
        if path.is_dir():
            models[seed] = models_of({int(seed): path}, tuple(decoders))[seed]
    first = str(result["seeds"]["train"][0])
    timing, path = result.get("gpu_timing"), Path(out) / GPU_TIMING
    if (first not in models and timing and not timing.get("stale") and path.is_file()
            and all(r.get("gpu_eager_ms_per_chunk") is not None for r in result["rows"])):
        import json

        timed = {r["decoder"]: r.get("model") for r in json.loads(path.read_text())["rows"]}
        if all(timed.get(d) for d in decoders):
            models[first] = {d: timed[d] for d in decoders}
    return models


def attach_shipped(result: dict[str, Any], out: Path, log=print) -> None:
    """Set ``result["shipped"]``: the shipped set's own rows, or None if no seed ships.

    A ``SHIPPED_RUN/compare.json`` beside the results (the shipped set alone, on the same env
    seeds) supplies the shipped set's passes per chunk when ``result`` lacks per-seed passes,
    and its episode-by-episode agreement with ``result`` is recorded.
    """
    import json

    models = recorded_models(result, out)
    seed = shipped_seed(result["env_id"], models)
    if seed is None:
        result["shipped"] = None
        return
    rerun, rerun_file = None, f"{SHIPPED_RUN}/compare.json"
    path = Path(out) / rerun_file
    if path.is_file() and len(result["seeds"]["train"]) > 1:
        candidate = json.loads(path.read_text())
        first = candidate.get("seeds", {}).get("env_first", {}).get(str(seed))
        if (candidate.get("seeds", {}).get("train") == [seed]
                and first == result["seeds"]["env_first"].get(str(seed))
                and shipped_seed(candidate["env_id"],
                                 recorded_models(candidate, path.parent)) == seed):
            rerun = candidate
        else:
            log(f"{path}: not a run of the shipped set (training seed {seed}) on the same env "
                "seeds; left out")
    result["shipped"] = shipped_section(result, seed, display(shipped_folder(result["env_id"],
                                                                             seed)),
                                        rerun=rerun, rerun_file=rerun_file if rerun else None)


def seed_success(result: dict[str, Any], decoder: str, condition: str,
                 seed: int) -> dict[str, Any] | None:
    """One training seed's success in one condition, from ``compare.json``'s episode records.

    Returns:
        ``{"pc_success", "ci_low", "ci_high", "n_success", "episodes"}`` (95% Wilson), or None
        when that seed has no episodes of ``condition``.
    """
    eps = result["episodes"].get(decoder, {}).get(condition, {}).get(str(seed))
    if not eps:
        return None
    return success_cell(sum(int(x) for _, x in eps), len(eps))


def agreement(result: dict[str, Any], rerun: dict[str, Any], seed: int) -> dict[str, Any]:
    """Per decoder and condition: how many of ``seed``'s episodes a rerun decided the same way.

    Only env seeds present in both files count (a rerun of the same seeds, e.g. on another
    machine, should agree on all of them if evaluation is bit-reproducible there).
    """
    out: dict[str, Any] = {}
    for d, by_cond in rerun["episodes"].items():
        for cond, by_seed in by_cond.items():
            mine = dict(map(tuple, result["episodes"].get(d, {}).get(cond, {}).get(str(seed),
                                                                                   [])))
            theirs = dict(map(tuple, by_seed.get(str(seed), [])))
            shared = sorted(set(mine) & set(theirs))
            if shared:
                out.setdefault(d, {})[cond] = {
                    "episodes": len(shared),
                    "same": sum(mine[e] == theirs[e] for e in shared),
                    "pc_success_here": pct(sum(mine[e] for e in shared), len(shared)),
                    "pc_success_rerun": pct(sum(theirs[e] for e in shared), len(shared))}
    return out


def shipped_section(result: dict[str, Any], seed: int, folder: str,
                    rerun: dict[str, Any] | None = None,
                    rerun_file: str | None = None) -> dict[str, Any]:
    """The shipped set's own numbers inside a comparison that pools several training seeds.

    Success (train, held-out, latency-aware) is ``seed``'s part of the pooled episodes, so it
    comes from the same machine and env seeds as the pooled columns. Passes per chunk are that
    seed's own (``per_seed_detail``); where the pooled file predates them, they come from
    ``rerun``, a comparison of the shipped set alone on the same env seeds (its agreement with
    the pooled episodes is recorded).

    Args:
        result: The pooled ``compare.json`` object.
        seed: The training seed whose checkpoint set is the shipped one.
        folder: The shipped checkpoint set (for the label).
        rerun: Optional ``compare.json`` of the shipped set alone (training seed ``seed``).
        rerun_file: Where ``rerun`` lives, relative to the results folder (for the label).
    """
    rerun_rows = {r["decoder"]: r for r in (rerun or {}).get("rows", [])}
    rows = []
    for r in result["rows"]:
        d = r["decoder"]
        own = next((x for x in r.get("per_seed_detail", []) if x.get("train_seed") == seed), {})
        nfe, source = own.get("nfe_per_chunk"), "this run"
        if nfe is None and d in rerun_rows:
            nfe, source = rerun_rows[d]["nfe_per_chunk"], rerun_file or "rerun"
        cells = {c: seed_success(result, d, c, seed) for c in CONDITIONS}
        if cells["train"] is None:
            continue
        rows.append({"decoder": d, **cells["train"],
                     "heldout": cells["heldout"], "latency": cells["latency"],
                     "nfe_per_chunk": nfe, "nfe_source": source if nfe is not None else None})
    runs = runs_from_episodes({"episodes": {
        d: {c: {str(seed): by_seed[str(seed)]} for c, by_seed in by_cond.items()
            if str(seed) in by_seed} for d, by_cond in result["episodes"].items()}})
    return {"train_seed": seed, "checkpoints": folder,
            "pooled_checkpoints": result.get("checkpoints", {}),
            "label": f"shipped set only: training seed {seed} ({folder}), its part of the "
                     "pooled episodes",
            "rows": rows, "vs_ar": vs_baseline([r["decoder"] for r in rows], runs),
            "rerun": ({"file": rerun_file, "command": rerun.get("command"),
                       "provenance": rerun.get("provenance"),
                       "agreement": agreement(result, rerun, seed)} if rerun else None)}
