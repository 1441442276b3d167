import pytest

from envs.symbolic import (
    LAYOUTS,
    BlocksWorld,
    DroneNav,
    InvalidStepError,
    generate_tasks,
    make_domain,
)


def test_drone_adjacency_and_execution():
    d = DroneNav("office")
    assert "fly_to(reception)" in d.applicable("lobby")
    assert d.apply("lobby", "fly_to(corridor_1)") == "corridor_1"
    with pytest.raises(InvalidStepError, match="not adjacent"):
        d.apply("lobby", "fly_to(lab)")
    with pytest.raises(InvalidStepError, match="unknown room"):
        d.apply("lobby", "fly_to(attic)")
    ex = d.execute("lobby", ["fly_to(corridor_1)", "fly_to(stairs_1)", "fly_to(stairs_2)",
                             "fly_to(lab)"])
    assert not ex.valid and ex.failed_index == 3 and ex.states[-1] == "stairs_2"
    assert d.trace(ex.states) == [{"lobby"}, {"corridor_1"}, {"stairs_1"}, {"stairs_2"}]
    assert all(len(letter) == 1 for letter in d.letters())
    assert set().union(*d.letters()) == d.atoms


def test_drone_graph_is_connected_and_symmetric():
    for name in LAYOUTS:
        d = DroneNav(name)
        for a, nbrs in d.adjacency.items():
            assert all(a in d.adjacency[b] for b in nbrs)
        for room in d.states():
            assert d.reachable(d.start, lambda s, r=room: s == r) is not None


def test_blocks_preconditions_and_effects():
    d = BlocksWorld(("red", "blue", "green"))
    s = d.make_state({"left": ["red", "blue"], "center": ["green"]})
    assert d.label(s) == {"red_on_left", "blue_on_red", "green_on_center"}
    with pytest.raises(InvalidStepError, match="something is on it"):
        d.apply(s, "pick(red)")
    s1 = d.apply(s, "pick(blue)")
    assert d.label(s1) == {"red_on_left", "holding_blue", "green_on_center"}
    with pytest.raises(InvalidStepError, match="already holding"):
        d.apply(s1, "pick(green)")
    with pytest.raises(InvalidStepError, match="not clear"):
        d.apply(s1, "place(blue, left)")
    s2 = d.apply(s1, "place(blue, green)")
    assert d.label(s2) == {"red_on_left", "blue_on_green", "green_on_center"}
    assert set(d.applicable(s2)) == {"pick(red)", "pick(blue)"}
    assert d.describe(s2) == "left: red. center: green blue. right: -. hand: empty."
    assert len(d.states()) == 96 and len(d.letters()) == 96
    assert set(d.steps()) >= set(d.applicable(s1))


def test_blocks_make_state_validates():
    d = BlocksWorld(("red", "blue"))
    with pytest.raises(ValueError, match="once"):
        d.make_state({"left": ["red"]})
    with pytest.raises(ValueError, match="unknown location"):
        d.make_state({"moon": ["red", "blue"]})


@pytest.mark.parametrize("name", ["drone_nav", "blocks_world"])
def test_task_generator_is_seeded_and_split(name):
    a = generate_tasks(name, 30, seed=3)
    b = generate_tasks(name, 30, seed=3)
    assert [(t.instruction, t.ltl, t.initial_state) for t in a] == \
        [(t.instruction, t.ltl, t.initial_state) for t in b]
    assert len({t.template for t in a}) > 5
    held = generate_tasks(name, 30, seed=3, split="heldout")
    train_templates = {t.template for t in generate_tasks(name, 200, seed=0)}
    assert all("/train" in t for t in train_templates)
    for t in held:
        assert "/heldout" in t.template or LAYOUTS[t.info["layout"]].split == "heldout"
    for t in a + held:
        assert t.goal_ltl and t.ltl and t.instruction.endswith(".")


def test_train_tasks_never_use_heldout_layouts():
    assert all(LAYOUTS[t.info["layout"]].split == "train"
               for t in generate_tasks("drone_nav", 100, seed=1))


def test_registry_errors():
    with pytest.raises(ValueError, match="drone_nav"):
        make_domain("drone_navv")
    with pytest.raises(ValueError, match="split"):
        generate_tasks("drone_nav", 1, split="test")
    with pytest.raises(ValueError, match="layout"):
        DroneNav("castle")


def test_blocks_state_naming_an_unknown_block_is_refused():
    from envs.symbolic import BlocksState, InvalidStateError

    d = BlocksWorld(("red", "blue", "green"))
    good = d.make_state({"left": ["red", "blue"], "center": ["green"]})
    assert d.validate_state(good) == good
    bad = [
        (BlocksState((("blue", "red"), ("green", "center"), ("purple", "left"))), "purple"),
        (BlocksState((("blue", "red"), ("green", "attic"), ("red", "left"))), "attic"),
        (BlocksState((("blue", "red"), ("red", "left"))), "missing.*green"),
        (BlocksState((("blue", "left"), ("green", "left"), ("red", "right"))), "more than one"),
        (BlocksState((("blue", "red"), ("green", "center"), ("red", "blue"))), "cycle"),
        (BlocksState((("blue", "red"), ("green", "center")), "red"), "held block"),
        (BlocksState((("blue", "red"), ("green", "center"), ("red", "left")), "ghost"), "ghost"),
    ]
    for state, msg in bad:
        with pytest.raises(InvalidStateError, match=msg):
            d.validate_state(state)
        with pytest.raises(InvalidStateError):
            d.execute(state, ["pick(blue)"])
    with pytest.raises(TypeError, match="BlocksState"):
        d.validate_state("left: red blue")
    unsorted = BlocksState((("red", "left"), ("blue", "red"), ("green", "center")))
    assert d.validate_state(unsorted) == good


def test_drone_unknown_or_mistyped_start_is_refused():
    from envs.symbolic import InvalidStateError

    d = DroneNav("office")
    with pytest.raises(InvalidStateError, match="attic.*lobby"):
        d.validate_state("attic")
    with pytest.raises(InvalidStateError, match="did you mean 'lobby'"):
        d.execute("loby", ["fly_to(corridor_1)"])
    with pytest.raises(InvalidStateError, match="unknown room 'attic'"):
        d.apply("attic", "fly_to(corridor_1)")  # a KeyError before
    for bad in (3, None, ("lobby",), b"lobby"):
        with pytest.raises(TypeError, match="node name"):
            d.validate_state(bad)
    with pytest.raises(TypeError):
        DroneNav("office", start=7)
    with pytest.raises(InvalidStateError):
        DroneNav("office", start="attic")
    with pytest.raises(TypeError, match="sequence of step strings"):
        d.execute("lobby", "fly_to(corridor_1)")


@pytest.mark.parametrize("room, msg", [
    ("Lobby", "not a valid atom"), ("mail room", "not a valid atom"), ("2nd_floor", "atom"),
    ("true", "atom"), ("café", "atom"), ("", "atom"), ("corridor_1", "collides"),
    ("stairs_2", "collides"), ("corridor_9", "collides"),
])
def test_layout_room_names_must_be_atoms_and_not_generated_names(room, msg):
    from envs.symbolic import Layout

    with pytest.raises(ValueError, match=msg):
        Layout("bad", (("lobby", room), ("lab",)))


def test_layout_structure_is_checked_when_built():
    from envs.symbolic import Layout

    with pytest.raises(ValueError, match="repeats"):
        Layout("twice", (("lobby", "lab"), ("lab",)))
    with pytest.raises(ValueError, match="unknown node 'attic'"):
        Layout("door", (("lobby", "lab"),), (("lobby", "attic"),))
    with pytest.raises(ValueError, match="itself"):
        Layout("door", (("lobby", "lab"),), (("lobby", "lobby"),))
    with pytest.raises(ValueError, match="floor 1"):
        Layout("empty", ((),))
    with pytest.raises(TypeError):
        Layout("rooms", ("lobby", "lab"))  # a floor must be a sequence of names, not a str
    with pytest.raises(ValueError, match="split"):
        Layout("split", (("lobby",),), split="test")
    ok = Layout("ok", [["lobby", "lab"], ["office_1"]], [("lab", "corridor_2")])
    assert ok.floors == (("lobby", "lab"), ("office_1",)) and hash(ok)
    assert "lab" in DroneNav(ok).adjacency["corridor_2"]
