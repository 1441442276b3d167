"""The console script builds and every command answers --help."""

from typer.testing import CliRunner

from experiments.cli import build_app


def _commands(group, prefix=()):
    import typer.main

    click_group = typer.main.get_command(group)
    stack = [(prefix, click_group)]
    while stack:
        path, cmd = stack.pop()
        yield path
        for name, sub in getattr(cmd, "commands", {}).items():
            stack.append(((*path, name), sub))


def test_every_command_has_help():
    app = build_app()
    runner = CliRunner()
    paths = list(_commands(app))
    assert paths, "no commands registered"
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output
