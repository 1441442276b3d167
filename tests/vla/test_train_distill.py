"""Training (resume determinism), distillation and the CLI end to end on tiny data."""

from __future__ import annotations

import json

import pytest
import torch
from vla_fakes import fake_instruction_cache

from decoding import jacobi
from vla.checkpoint import from_pretrained, save_pretrained
from vla.data import load_chunks
from vla.distill import DistillConfig, distill, distill_loss, jacobi_trajectories, mix_with_teacher
from vla.heads.ar import noisy_inputs
from vla.train import TrainConfig, Trainer


def _tensors(synthetic):
    data = load_chunks(synthetic, ["image"], 32, 4, 4)
    return data


def test_training_is_deterministic_and_resumes_exactly(make_model, synthetic, tmp_path):
    torch.set_num_threads(1)
    data = _tensors(synthetic)
    cfg = TrainConfig(steps=12, batch_size=8, warmup=2, eval_every=6, ema=0.9)
    straight = make_model("diffusion")
    Trainer(straight, data, data, cfg, tmp_path / "a").run(progress=False)
    first = make_model("diffusion")
    Trainer(first, data, data, cfg, tmp_path / "b").run(progress=False, until=6)
    resumed = make_model("diffusion", seed=5)  # different init: resume must overwrite it
    trainer = Trainer(resumed, data, data, cfg, tmp_path / "b")
    assert trainer.resume() and trainer.step == 6
    history = trainer.run(progress=False)
    for (n, p), q in zip(straight.named_parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=n)
    a = json.loads((tmp_path / "a" / "train_state.json").read_text())["history"]
    assert a[-1]["val_loss"] == history[-1]["val_loss"]
    assert "val_token_acc" in history[-1]
    assert from_pretrained(tmp_path / "a", allow_encoder=False).config.head == "diffusion"


def test_jacobi_trajectories_reach_the_greedy_ar_fixed_point(make_model, synthetic):
    model = make_model("ar", seed=3).double().eval()
    with torch.no_grad():
        model.head.lm_head.weight.mul_(30)
    data = _tensors(synthetic)
    obs, _, _ = data.batch(torch.arange(4), model.instructions.embed(data.instructions), 32)
    states, n_iter = jacobi_trajectories(model, obs)
    n = model.config.n_action_tokens
    assert states.shape == (4, n + 2, n)
    cache = model.encode_prefix(obs)
    for r in range(4):
        ref = jacobi(model.head.causal_lm(model), model.head.bos_ids(1, model.device), n,
                     cache=model.encode_prefix(type(obs)([x[r:r + 1] for x in obs.images],
                                                         obs.state[r:r + 1], obs.lang[r:r + 1])))
        assert torch.equal(states[r, -1], ref.tokens[0])
        # The iterate equals y* after n_iter passes; verifying it may take one pass more.
        assert int(n_iter[r]) <= ref.nfe <= int(n_iter[r]) + 1
    assert cache.get_seq_length() == model.config.prefix_len


def test_noisy_inputs_keep_bos_and_corrupt_at_the_given_rate():
    inputs = torch.full((64, 33), 7)
    assert noisy_inputs(inputs, 0.0, 256, None) is inputs
    out = noisy_inputs(inputs, 0.8, 256, torch.Generator().manual_seed(0))
    assert torch.equal(out[:, 0], inputs[:, 0])
    changed = (out[:, 1:] != 7).float().mean()
    assert 0.75 < changed < 0.85  # 80% replaced, a few by the same bin


def test_distill_loss_keeps_the_teachers_input_noise(make_model, synthetic):
    """With ``keep_input_noise`` the AR term sees corrupted inputs.

    The loss then depends on the draw; without it, or for a teacher trained without noise, not.
    """
    torch.set_num_threads(1)
    data = _tensors(synthetic)

    def losses(model, keep: bool) -> set[float]:
        obs, actions, _ = data.batch(torch.arange(4), model.instructions.embed(data.instructions),
                                     32)
        with torch.no_grad():
            states, n_iter = jacobi_trajectories(model.eval(), obs)
        gt = model.tokenizer.encode(actions)
        cfg = DistillConfig(keep_input_noise=keep, gt_label_prob=1.0)
        model.eval()  # no dropout: only the input noise can vary between draws
        return {round(float(distill_loss(model, obs, gt, states, n_iter * 0, cfg,
                                         torch.Generator().manual_seed(s))[1]["ar"]), 6)
                for s in range(3)}

    assert len(losses(make_model("ar", ar_input_noise=0.8), keep=True)) == 3
    assert len(losses(make_model("ar", ar_input_noise=0.8), keep=False)) == 1
    assert len(losses(make_model("ar"), keep=True)) == 1
    with pytest.raises(ValueError, match="augment_shift"):
        DistillConfig(augment_shift=-1)


def test_distill_end_to_end_writes_student_and_early_exit_curve(make_model, synthetic, tmp_path):
    torch.set_num_threads(1)
    data = _tensors(synthetic)
    teacher = make_model("ar")
    Trainer(teacher, data, None, TrainConfig(steps=40, batch_size=16, warmup=5, eval_every=40,
                                             lr=3e-3), tmp_path / "t").run(progress=False)
    cfg = DistillConfig(steps=6, batch_size=8, n_trajectories=16, eval_every=3, n_eval=4)
    summary = distill(teacher.eval(), data, data, cfg, tmp_path / "s", progress=False)
    student = from_pretrained(tmp_path / "s", allow_encoder=False)
    assert student.config == teacher.config
    ee = json.loads((tmp_path / "s" / "early_exit.json").read_text())
    names = [c["name"] for c in ee["student_sweep"]["curve"]]
    assert "exact" in names and "max2" in names and ee["student_sweep"]["chosen"] in names
    exact = next(c for c in ee["teacher_sweep"]["curve"] if c["name"] == "exact")
    assert exact["l1"] == pytest.approx(summary["ar_baseline"]["l1"])  # Jacobi == AR
    assert exact["nfe"] <= summary["ar_baseline"]["nfe"] == 16
    assert all("repetition" in h for h in summary["history"])
    assert (tmp_path / "s" / "trajectories.safetensors").is_file()
    assert student.chosen_early_exit == ee["student_sweep"]["chosen_setting"]
    _, stats = student.predict_chunk(data.obs_dict([0]), decoder="jacobi", early_exit="auto")
    cap = (student.chosen_early_exit or {}).get("max_iters")
    assert stats["nfe"] <= (cap or 16)


def test_teacher_mix_moves_the_student_halfway_back(make_model, synthetic, tmp_path):
    """In distillation (the sweep then sees the mixed student) and on a saved student."""
    torch.set_num_threads(1)
    data = _tensors(synthetic)
    teacher = make_model("ar").eval()
    cfg = DistillConfig(steps=3, batch_size=8, n_trajectories=16, eval_every=3, n_eval=4, lr=1e-2)
    distill(teacher, data, data, cfg, tmp_path / "s", progress=False)
    summary = distill(teacher, data, data, DistillConfig(**{**cfg.__dict__, "teacher_mix": 0.5}),
                      tmp_path / "m", progress=False)
    assert summary["history"][-1]["teacher_mix"] == 0.5
    save_pretrained(teacher, tmp_path / "t")
    out = mix_with_teacher(tmp_path / "t", tmp_path / "s", tmp_path / "post", 0.5)
    t, s, m, post = (from_pretrained(p, allow_encoder=False).state_dict() for p in
                     (tmp_path / "t", tmp_path / "s", tmp_path / "m", tmp_path / "post"))
    w = "head.lm_head.weight"
    assert not torch.allclose(t[w], s[w])  # the student moved
    torch.testing.assert_close(post[w], (t[w] + s[w]) / 2, rtol=0, atol=2e-3)  # fp16 files
    torch.testing.assert_close(m[w], post[w], rtol=0, atol=2e-3)  # same seed: same student
    ee = json.loads((out / "early_exit.json").read_text())
    assert ee["config"]["teacher_mix"] == 0.5 and ee["teacher_mix_after_sweep"]
    with pytest.raises(ValueError, match="teacher_mix"):
        DistillConfig(teacher_mix=1.0)
    with pytest.raises(ValueError, match="configs differ"):
        other = _other_config_student(make_model, tmp_path)
        mix_with_teacher(tmp_path / "t", other, tmp_path / "x", 0.5)


def _other_config_student(make_model, tmp_path):
    other = make_model("ar", ar_input_noise=0.3)
    return save_pretrained(other, tmp_path / "other")


@pytest.fixture(scope="module")
def tiny_lerobot(tmp_path_factory):
    """Three expert episodes of TabletopReach at 32x32, with a fake instruction cache."""
    envs = pytest.importorskip("envs")
    from envs.lerobot_dataset import collect

    root = tmp_path_factory.mktemp("data") / "reach"
    collect("robodecode/TabletopReach-v0", 3, root, seed=0, progress=False,
            env_kwargs={"image_size": 32})
    from envs.dataset_reader import ActionChunkDataset

    cache = fake_instruction_cache()
    g = torch.Generator().manual_seed(1)
    for text in set(ActionChunkDataset(root, 4)._tasks.values()):
        cache.put(text, torch.randn(384, generator=g))
    cache.save(root.parent / "instructions.safetensors")
    assert envs is not None
    return root


def test_train_and_distill_cli_end_to_end(tiny_lerobot, tmp_path):
    from typer.testing import CliRunner

    from experiments.cli import build_app

    runner = CliRunner()
    common = ["--instruction-cache", str(tiny_lerobot.parent / "instructions.safetensors"),
              "--data-cache", str(tmp_path / "chunks"), "--no-progress", "--threads", "1",
              "--data", str(tiny_lerobot)]
    res = runner.invoke(build_app(), ["train", "--head", "ar", "--out", str(tmp_path / "ar"),
                                      "--steps", "4", "--batch-size", "4", "--preset", "tiny",
                                      "--horizon", "4", "--eval-every", "2", *common])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output[res.output.index("{"):])
    assert summary["steps"] == 4 and summary["val_items"] > 0
    res = runner.invoke(build_app(), ["distill", "--teacher", str(tmp_path / "ar"),
                                      "--out", str(tmp_path / "cjacobi"), "--steps", "2",
                                      "--batch-size", "4", "--n-trajectories", "8",
                                      "--n-eval", "2", "--keep-input-noise",
                                      "--augment-shift", "2", "--teacher-mix", "0.25", *common])
    assert res.exit_code == 0, res.output
    ee = json.loads((tmp_path / "cjacobi" / "early_exit.json").read_text())
    assert ee["config"]["keep_input_noise"] and ee["config"]["augment_shift"] == 2
    assert ee["config"]["teacher_mix"] == 0.25
    res = runner.invoke(build_app(), ["info", str(tmp_path / "ar"), "--preset", "tiny"])
    assert res.exit_code == 0 and "params" in res.output
    described = json.loads(res.output[res.output.index("{"):])
    table_ar = next(line for line in res.output.splitlines() if line.strip().startswith("ar "))
    assert f"{described['params']:,d} params" in table_ar  # the table agrees with the model
    res = runner.invoke(build_app(), ["info", str(tmp_path), "--preset", "tiny"])  # a set
    assert res.exit_code == 0 and res.output.count('"path"') == 2, res.output
    res = runner.invoke(build_app(), ["info", str(tmp_path / "missing"), "--preset", "tiny"])
    assert res.exit_code == 2 and "not a VLA checkpoint" in res.output
    res = runner.invoke(build_app(), ["bench", "vla", "--checkpoints", str(tmp_path),
                                      "--data", str(tiny_lerobot), "--n-obs", "2",
                                      "--train-steps", "1", "--threads", "1",
                                      "--data-cache", str(tmp_path / "chunks"),
                                      "--out", str(tmp_path / "bench.json")])
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "bench.json").read_text())
    assert set(result["instruction_sensitivity"]) == {"ar", "cjacobi"}
    rows = result["rows"]
    assert {r["decoder"] for r in rows} >= {"ar", "jacobi", "jacobi+ee", "cjacobi+ee"}
    assert next(r for r in rows if r["decoder"] == "ar")["nfe_per_chunk"] == 16
