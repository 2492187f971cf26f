"""Issue 22 (part A) without a browser: prompt files, paths, status texts, the per-prompt table."""

from __future__ import annotations


def test_a_prompt_file_shorter_than_the_count_sets_the_count_without_an_error(session):
    """Issue 22, problem 1: the count and the pool change in one update; every watcher takes it."""
    session.param.update(grid_prompt_pool=[f"prompt {i}" for i in range(30)], grid_prompt_count=24)
    session.set_prompt_file("one\ntwo\nthree\n")
    assert session.grid_prompt_pool == ["one", "two", "three"]
    assert session.grid_prompt_count == 3
    assert session.grid_prompts() == ["one", "two", "three"]


def test_a_downloaded_zip_names_no_path_of_the_server_and_its_recipe_still_reads(
    engine, tmp_path, monkeypatch
):
    """Issue 22, problem 2: the zip's recipe.yaml and adapter_config.json name the base model and
    the adapters relative to the cache folder (or by name), never by the server's absolute path;
    ``explorer export --recipe`` reads such a recipe back, hashes checked."""
    import io
    import zipfile

    import yaml

    from explorer.export import read_recipe

    root = engine.export_dir.parent  # the tiny soup's base and adapters live here
    monkeypatch.setenv("PSE_CACHE_DIR", str(root))
    done = engine.export({"helpful": 0.5, "concise": 0.2, "positive": 0.3})
    with zipfile.ZipFile(io.BytesIO(done.zip_path.read_bytes())) as zf:
        for name in zf.namelist():
            assert str(root).encode() not in zf.read(name), name
        zf.extractall(tmp_path)
    recipe_file = next(tmp_path.rglob("recipe.yaml"))
    data = yaml.safe_load(recipe_file.read_text())
    assert data["base"]["path"].startswith("<cache>/")
    assert all(a["path"].startswith("<cache>/") for a in data["adapters"].values())
    assert read_recipe(recipe_file)["weights"] == data["weights"]  # resolved here, hashes match
    # a server whose files are under no folder the user knows: names alone
    monkeypatch.setenv("PSE_CACHE_DIR", str(tmp_path / "another-cache"))
    again = engine.export({"helpful": 0.4, "concise": 0.2, "positive": 0.4})
    with zipfile.ZipFile(again.zip_path) as zf:
        for name in zf.namelist():
            assert str(root).encode() not in zf.read(name), name


def test_the_app_does_not_import_ray():
    """Issue 22, problem 9: Ray (an optional extra, only for --ray) is not imported by the app or
    a notebook that opens it: importing it costs seconds and logs INFO lines into the notebook."""
    import subprocess
    import sys

    code = "import sys, explorer.app.main, explorer.launch, explorer.options; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr


def test_the_frontier_status_says_computing_with_its_time_left_and_a_cancelled_grid_says_so(engine, session):
    """Issue 22, problem 5, in the texts the page shows."""
    from explorer.app.engine import duration_text, time_left
    from explorer.app.views import frontier_status
    from explorer.frontier.evaluation import Progress

    running = frontier_status(None, "7 mixes", running=True, eta="about 20 s left")
    assert "Computing the frontier" in running and "about 20 s left" in running
    assert "No frontier yet" not in running
    assert "No frontier yet" in frontier_status(None, "", running=False)
    progress = Progress(rows_done=7, rows_total=12, chunks_done=1, chunks_total=2, elapsed_s=14.0)
    assert time_left(progress, 14.0) == 10.0  # 5 rows at 2 s a row
    assert time_left(Progress(3, 12, 1, 4, 1.0, resumed_rows=3), 1.0) is None  # nothing computed here yet
    assert [duration_text(s) for s in (0.2, 40, 200, 7300)] == ["1 s", "40 s", "3 min", "2 h 2 min"]
    session.start_grid()
    engine.wait_grid(300)
    ds = session._grid.results
    partial = ds.copy()
    partial["done"] = partial["done"].copy(data=partial["done"].values.copy())
    partial["done"].values.flat[0] = False
    partial.attrs["complete"] = 0
    moving = frontier_status(partial, "s", running=True, eta="about 3 s left")
    stopped = frontier_status(partial, "s", running=False, message="grid cancelled")
    assert "will still move" in moving and "about 3 s left" in moving
    assert "will still move" not in stopped and "cancelled" in stopped


def test_two_clicked_points_show_side_by_side_with_their_differences_marked(engine, session):
    """Issue 22, problem 4: the point clicked before stays beside the one clicked last."""
    from explorer.app.point_table import other_field, point_frame, points_header
    from explorer.frontier.results import objective_names

    session.start_grid()
    engine.wait_grid(300)
    session.results = session._grid.results
    ds = session.results
    session.load_mix(1)
    session.load_mix(4)
    assert (session.grid_point, session.compare_point) == (4, 1)
    session.load_mix(4)  # the same point again keeps the one before
    assert session.compare_point == 1
    frame = point_frame(ds, 4, 1)
    assert len(frame) == len(ds["prompt"]) and {"prompt", "response", "other_response"} <= set(frame)
    assert {other_field(o) for o in objective_names(ds)} <= set(frame)
    texts = ds["text"].values
    for p in range(len(frame)):
        if str(texts[4, p, 0]) != str(texts[1, p, 0]):
            assert "<mark>" in frame["other_response"][p]
    assert "clicked before" in points_header(ds, 4, 1) and "Click a grid point" in points_header(
        ds, None, None
    )


def test_typing_in_the_prompt_box_marks_the_response_stale_at_once(session):
    session.regenerate(wait=True)
    assert not session.stale
    session.prompt_typed(session.prompt + " more")
    assert session.stale
