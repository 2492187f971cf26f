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
