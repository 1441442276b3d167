"""The robodecode MuJoCo tabletop: a parallel-jaw gripper, coloured blocks and target zones."""


def register_envs() -> None:
    """Register the tabletop gymnasium ids in the ``robodecode`` namespace."""
