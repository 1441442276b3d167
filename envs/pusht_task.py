"""LeRobot's PushT (``gym-pusht``) behind robodecode's observation contract, without an expert.

Usage: ``env = gymnasium.make("robodecode_thirdparty/PushT-v0")`` (after ``register_envs()``)

PushT has no scripted expert, so it is registered outside the ``robodecode`` namespace (every
``robodecode/*`` image env has one): it serves policies trained on recorded PushT
demonstrations (LeRobot's ``lerobot/pusht`` teleoperation data), not ``robodecode collect``.
Registration records a string entry point; ``gym_pusht`` (pygame, pymunk) is imported only when
an env is made.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from envs.actions import check_action

PUSHT_ID = "robodecode_thirdparty/PushT-v0"

TRAIN_INSTRUCTIONS = (
    "push the T-shaped block onto the green T",
    "slide the grey T into the green target",
    "move the T block so it covers the green T",
)
HELDOUT_INSTRUCTIONS = ("align the grey tee with the green outline",)
INSTRUCTION_CHARSET = "".join(
    sorted({c for s in TRAIN_INSTRUCTIONS + HELDOUT_INSTRUCTIONS for c in s})
)
_MAX_INSTRUCTION_LEN = max(len(s) for s in TRAIN_INSTRUCTIONS + HELDOUT_INSTRUCTIONS)

_WORKSPACE = 512.0  # gym-pusht's square arena, in its pixel units


class PushTTaskEnv(gymnasium.Env):
    """Push a T-shaped block onto a fixed T-shaped target with a round 2-D pusher.

    A thin adapter over ``gym_pusht.envs.PushTEnv`` (pymunk physics, pygame rendering) that
    only rescales actions and renames observation keys; physics, reward and success are
    gym-pusht's own.

    ## Action Space
    ``Box(-1, 1, (2,), float32)``: the pusher's target position, (-1, -1) the arena's top-left
    and (1, 1) its bottom-right corner (gym-pusht's absolute [0, 512] target, rescaled). A PD
    controller moves the pusher toward it for 0.1 s. Out-of-range values are clipped; a wrong
    shape, a NaN/inf or entries that are not real numbers (complex, strings, objects) raise
    ``ValueError``.

    ## Observation Space
    ``image`` (uint8 ``(image_size, image_size, 3)``, top-down; x right, y down), ``state``
    (float32 ``(2,)``: the pusher position in the action's [-1, 1] coordinates) and
    ``instruction`` (``Text`` over ``INSTRUCTION_CHARSET``; the task is fixed, so the
    instruction carries no information a policy needs).

    ## Rewards
    gym-pusht's coverage of the target by the block over 0.95, clipped to [0, 1];
    ``info["coverage"]`` and ``info["is_success"]`` (coverage > 0.95). The episode terminates
    on success; the registered id truncates after 300 steps (LeRobot's evaluation limit).

    ## Version History
    * v0: gym-pusht 0.1.x ``pixels_agent_pos`` observations.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self, split: str = "train", render_mode: str | None = None, image_size: int = 96
    ) -> None:
        """Build the gym-pusht env.

        Args:
            split: ``"train"`` or ``"heldout"`` instruction phrasings.
            render_mode: ``None`` or ``"rgb_array"`` (``render()`` returns the observed image).
            image_size: Side of the square image in pixels (16 to 512; gym-pusht's default 96).

        Raises:
            ValueError: If an argument is out of its documented range.
        """
        if split not in ("train", "heldout"):
            raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if not 16 <= int(image_size) <= 512:
            raise ValueError(f"image_size must be in [16, 512], got {image_size}")
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # pygame's import banner
        from gym_pusht.envs import PushTEnv

        self.split = split
        self.render_mode = render_mode
        self.image_size = int(image_size)
        self.instructions = TRAIN_INSTRUCTIONS if split == "train" else HELDOUT_INSTRUCTIONS
        self._inner = PushTEnv(
            obs_type="pixels_agent_pos",
            render_mode="rgb_array",
            observation_width=self.image_size,
            observation_height=self.image_size,
        )
        self.control_dt = 1.0 / self._inner.control_hz
        self._image: np.ndarray | None = None
        self._instruction = self.instructions[0]
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (self.image_size, self.image_size, 3), np.uint8),
                "state": spaces.Box(-1.0, 1.0, (2,), np.float32),
                "instruction": spaces.Text(
                    _MAX_INSTRUCTION_LEN, min_length=1, charset=INSTRUCTION_CHARSET
                ),
            }
        )
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Start an episode: random pusher and block poses and an instruction from ``seed``."""
        super().reset(seed=seed)
        inner_obs, inner_info = self._inner.reset(seed=int(self.np_random.integers(2**31 - 1)))
        self._instruction = self.instructions[int(self.np_random.integers(len(self.instructions)))]
        return self._observation(inner_obs), {"is_success": False}

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Move the pusher toward the target position ``action`` for one 0.1 s control step."""
        if self._image is None:
            raise RuntimeError("call reset() before step()")
        a = check_action(action, (2,), "(target x, y in [-1, 1])")
        target = (a + 1.0) * (_WORKSPACE / 2.0)
        inner_obs, reward, terminated, _, inner_info = self._inner.step(target)
        info = {
            "is_success": bool(inner_info["is_success"]),
            "coverage": float(inner_info["coverage"]),
            "n_contacts": int(inner_info["n_contacts"]),
        }
        return self._observation(inner_obs), float(reward), bool(terminated), False, info

    def render(self) -> np.ndarray | None:
        """Return the current observed image (``render_mode="rgb_array"``), else None."""
        if self.render_mode != "rgb_array" or self._image is None:
            return None
        return self._image.copy()

    def close(self) -> None:
        """Close gym-pusht (it owns a pygame window only in human mode)."""
        self._inner.close()

    def _observation(self, inner_obs: dict[str, np.ndarray]) -> dict[str, Any]:
        self._image = np.ascontiguousarray(inner_obs["pixels"], dtype=np.uint8)
        state = np.asarray(inner_obs["agent_pos"], np.float64) / (_WORKSPACE / 2.0) - 1.0
        return {
            "image": self._image.copy(),
            "state": np.clip(state, -1.0, 1.0).astype(np.float32),
            "instruction": self._instruction,
        }


def register_envs() -> None:
    """Register ``robodecode_thirdparty/PushT-v0`` when ``gym_pusht`` is importable."""
    if importlib.util.find_spec("gym_pusht") is None or PUSHT_ID in gymnasium.registry:
        return
    gymnasium.register(
        id=PUSHT_ID, entry_point="envs.pusht_task:PushTTaskEnv", max_episode_steps=300
    )
