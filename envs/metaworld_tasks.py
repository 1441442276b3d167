"""MetaWorld v3 tasks behind robodecode's observation contract (registered when installed)."""


def register_envs() -> None:
    """Register ``robodecode/MetaWorld-<task>-v0`` ids when ``metaworld`` is importable."""
