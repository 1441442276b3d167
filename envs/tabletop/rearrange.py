"""``robodecode/TabletopRearrange-v0``: several pick-and-place steps under temporal conditions.

Usage: ``env = gymnasium.make("robodecode/TabletopRearrange-v0")`` (after ``import envs``);
``info["atoms"]`` is the symbolic state of every step; ``env.unwrapped.rearrange_task.formula``
is the spec.
"""

from __future__ import annotations

from typing import Any

from gymnasium import spaces

from envs.tabletop import instructions as ins
from envs.tabletop.env import TabletopEnv
from envs.tabletop.rearrange_tasks import (
    MAX_INSTRUCTION_LENGTH,
    PATTERNS,
    RearrangeTask,
    holding_atom,
    in_atom,
    sample_rearrange_task,
)


class TabletopRearrangeEnv(TabletopEnv):
    """Two or three blocks to place in zones, maybe in order, maybe keeping a zone empty.

    The scene, the gripper, the action and the cameras are :class:`TabletopEnv`'s; only the task
    differs. Every reset draws a layout (no block starts in a zone) and a
    :class:`~envs.tabletop.rearrange_tasks.RearrangeTask` whose instruction is the observation's
    ``instruction`` ("put the red block in the purple zone before the blue block goes to the
    white zone, and never put anything in the orange zone").

    ## Action Space
    As ``TabletopEnv``: ``Box(-1, 1, (4,), float32)``, ``(dx, dy, dz, jaw)``.

    ## Observation Space
    As ``TabletopEnv`` (``image``, optional ``wrist_image``, ``state`` (7,), ``instruction``);
    instructions are up to 192 characters.

    ## Rewards
    ``reward_placed`` = 1 per placement that holds; ``reward_reach`` / ``reward_place`` are
    ``TabletopEnv``'s for the next placement not yet holding; ``reward_success`` = 10 on success.
    ``info`` adds ``atoms`` (the sorted true atoms: ``<block>_in_<zone>``, ``holding_<block>``),
    ``placed`` (placements holding), ``violation`` (why the conditions were broken, or
    ``None``) and ``step_target`` (the next placement, as ``{"block", "zone"}``).

    ## Termination
    Success (every placement holds, the gripper holds none of their blocks, no condition was
    ever broken) and violation (a block rested in the avoided zone, or a placement held before
    the one ordered ahead of it ever did) both terminate the episode; ``truncated`` comes from
    the registered ``TimeLimit`` (400 steps).

    ## Reset options
    ``options={"pattern": "avoid"}`` draws a task of that pattern (``rearrange_tasks.PATTERNS``).

    ## Step-level instructions
    With ``step_instructions=True`` the observation's ``instruction`` is the one-step
    instruction of the next placement not yet holding ("put the red block in the purple
    zone"), the language a pick-and-place policy executes, so ``robodecode collect`` records
    step-level demonstrations in multi-block scenes; ``info["task_instruction"]`` keeps the
    whole task's.

    ## Version History
    * v0: initial version.
    """

    def __init__(self, split: str = "train", render_mode: str | None = None,
                 image_size: int = 128, wrist_camera: bool = False, images: bool = True,
                 step_instructions: bool = False):
        """Build the env (arguments as ``TabletopEnv``'s, without ``task``).

        Args:
            split: ``"train"`` or ``"heldout"`` phrasings and block/zone pairs.
            render_mode: ``None`` or ``"rgb_array"``.
            image_size: Camera image side in pixels.
            wrist_camera: Also observe ``wrist_image``.
            images: Include camera images in observations.
            step_instructions: Observe the next step's one-step instruction instead of the
                task's (see "Step-level instructions").
        """
        super().__init__(task="pickplace", split=split, render_mode=render_mode,
                         image_size=image_size, wrist_camera=wrist_camera, images=images)
        self.step_instructions = bool(step_instructions)
        self.observation_space["instruction"] = spaces.Text(
            MAX_INSTRUCTION_LENGTH, min_length=1, charset=ins.CHARSET)
        self.rearrange_task: RearrangeTask | None = None
        self._first_held: list[int | None] = []
        self._violation: str | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode: new layout, gripper start and rearrangement task."""
        pattern = (options or {}).get("pattern")
        if pattern is not None and pattern not in PATTERNS:
            raise ValueError(f"options['pattern'] must be one of {PATTERNS}, got {pattern!r}")
        self.rearrange_task = None  # the base reset scores its own one-step spec
        super().reset(seed=seed)
        self.rearrange_task = sample_rearrange_task(self.np_random, self.split, pattern)
        self._first_held = [None] * len(self.rearrange_task.placements)
        self._violation = None
        self._aim()
        parts = self._reward_parts()
        return self._observe(), self._info(parts)

    def step(self, action):
        """Apply one action (see ``TabletopEnv.step``); a violation ends the episode too."""
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, reward, bool(terminated or info["violation"] is not None), truncated, info

    # ------------------------------------------------------------------ symbolic state
    def atoms_now(self) -> frozenset[str]:
        """The atoms true in the current simulator state."""
        true = {in_atom(b, z) for b in ins.BLOCK_COLOURS for z in ins.ZONE_COLOURS
                if self.in_zone(b, z)}
        return frozenset(true | {holding_atom(b) for b in ins.BLOCK_COLOURS
                                 if self.is_grasped(b)})

    def _holding(self) -> list[bool]:
        return [self.in_zone(b, z) for b, z in self.rearrange_task.placements]

    def _aim(self) -> None:
        """Point ``task_spec`` (read by the reward and the scripted expert) at the next step."""
        holding = self._holding()
        i = next((i for i, h in enumerate(holding) if not h), len(holding) - 1)
        block, zone = self.rearrange_task.placements[i]
        text = (self.rearrange_task.steps[i] if self.step_instructions
                else self.rearrange_task.instruction)
        self.task_spec = ins.TaskSpec("pickplace", block, zone, self.rearrange_task.phrasing,
                                      text)

    def _monitor(self) -> None:
        """Record first-hold steps and the first broken condition (once per step)."""
        task = self.rearrange_task
        for i, h in enumerate(self._holding()):
            if h and self._first_held[i] is None:
                self._first_held[i] = self.elapsed_steps
                if task.ordered and i > 0 and self._first_held[i - 1] is None \
                        and self._violation is None:
                    b, z = task.placements[i - 1]
                    self._violation = f"{in_atom(*task.placements[i])} before {in_atom(b, z)}"
        if task.avoid is not None and self._violation is None:
            entered = [b for b in ins.BLOCK_COLOURS if self.in_zone(b, task.avoid)]
            if entered:
                self._violation = f"{in_atom(entered[0], task.avoid)}"

    # ------------------------------------------------------------------ TabletopEnv hooks
    def _success(self) -> bool:
        if self.rearrange_task is None:
            return super()._success()
        blocks = [b for b, _ in self.rearrange_task.placements]
        return (all(self._holding()) and self._violation is None
                and not any(self.touches_gripper(b) for b in blocks))

    def _reward_parts(self) -> dict[str, float]:
        if self.rearrange_task is None:
            return super()._reward_parts()
        self._monitor()
        self._aim()
        parts = super()._reward_parts()
        parts.pop("reward_grasp")
        parts["reward_placed"] = float(sum(self._holding()))
        return parts

    def _info(self, parts: dict[str, float]) -> dict[str, Any]:
        if self.rearrange_task is None:
            return super()._info(parts)
        return {"is_success": parts["reward_success"] > 0, "task": "rearrange",
                "atoms": sorted(self.atoms_now()), "placed": int(sum(self._holding())),
                "violation": self._violation, "step_target": dict(self.target),
                "task_instruction": self.rearrange_task.instruction, **parts}


def first_violation(task: RearrangeTask, trace: list[set[str]]) -> str | None:
    """The first broken condition of ``task`` on a trace of atom sets, or ``None``.

    The same conditions the env checks, computed from atoms alone (for symbolic planners and
    tests). Success on a trace additionally needs every placement atom in its last state.
    """
    seen: set[str] = set()
    wanted = [in_atom(b, z) for b, z in task.placements]
    for state in trace:
        if task.avoid is not None:
            bad = sorted(a for a in state if a.endswith(f"_in_{task.avoid}"))
            if bad:
                return bad[0]
        for i, atom in enumerate(wanted):
            if atom in state and atom not in seen:
                if task.ordered and i > 0 and wanted[i - 1] not in seen:
                    return f"{atom} before {wanted[i - 1]}"
                seen.add(atom)
    return None
