"""The RTC table's smoothness columns: switch jump over step jump, blank when not recorded."""

import json

from experiments.studies import rtc_table


def test_rtc_table_reports_the_switch_jump_ratio(tmp_path):
    def run(name, switch=None, step=None):
        folder = tmp_path / name
        folder.mkdir()
        per = [{"seed": 10 + i, "success": True} for i in range(3)]
        (folder / "eval_info.json").write_text(json.dumps(
            {"per_episode": per, "nfe_per_chunk": 2.0, "ms_per_chunk": 5.0,
             "avg_switch_jump": switch, "avg_step_jump": step}))

    run("oft-l80", switch=0.9, step=0.3)
    run("oft-l80-rtc", switch=0.4, step=0.2)
    run("oft-l0")  # an older run without smoothness
    text = rtc_table.table(rtc_table.load_runs(tmp_path))
    assert "| 0.900 (3.0x) | 0.400 (2.0x) |" in text.splitlines()[3]
    assert text.splitlines()[2].endswith("|  | |")


def test_rtc_plot_is_written(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    for name, ok in (("ar-l0", [1, 1]), ("ar-l80", [1, 0]), ("ar-l80-rtc", [1, 1])):
        (runs / name).mkdir()
        per = [{"seed": i, "success": bool(v)} for i, v in enumerate(ok)]
        (runs / name / "eval_info.json").write_text(json.dumps(
            {"per_episode": per, "nfe_per_chunk": 1.0, "ms_per_chunk": 1.0}))
    rtc_table.main([str(runs), "--plot", str(tmp_path / "fig.png")])
    assert (tmp_path / "fig.png").stat().st_size > 5_000
