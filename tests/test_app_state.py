"""The app's state without a browser: sliders on the simplex, live generation, pins, grid, export."""

from __future__ import annotations

import io
import queue
import threading
import zipfile

import numpy as np
import pytest

from explorer.app import shared_engine
from explorer.app.compare import highlight_differences
from explorer.app.state import MAX_PINS, Session, rescale_on_simplex
from explorer.config import ModelOptions
from explorer.errors import SoupError
from explorer.objectives import Objective
from explorer.options import AppOptions
from explorer.sampling import SamplingConfig, generate
from explorer.scheduler import Priority


def test_rescale_keeps_the_simplex_and_proportions():
    w = rescale_on_simplex({"a": 0.2, "b": 0.3, "c": 0.5}, "a", 0.6)
    assert w["a"] == 0.6 and sum(w.values()) == pytest.approx(1.0)
    assert w["c"] / w["b"] == pytest.approx(0.5 / 0.3)
    assert rescale_on_simplex({"a": 1.0, "b": 0.0, "c": 0.0}, "a", 0.4) == pytest.approx(
        {"a": 0.4, "b": 0.3, "c": 0.3}
    )
    assert rescale_on_simplex({"a": 0.5, "b": 0.5}, "a", 1.7)["a"] == 1.0  # clipped


def test_free_mode_allows_extrapolation(session):
    session.simplex = False
    session.set_weight("helpful", 1.8)
    assert session.weights["helpful"] == 1.8 and sum(session.weights.values()) != pytest.approx(1.0)


def test_back_on_the_simplex_projects_the_mix(session):
    session.simplex = False
    session.weights = {"helpful": 1.5, "concise": -0.5, "positive": 0.5}
    session.simplex = True  # the state projects the mix; no view is involved
    assert session.weights == pytest.approx({"helpful": 0.75, "concise": 0.0, "positive": 0.25})
    session.simplex = False
    session.weights = {"helpful": -1.0, "concise": 0.0, "positive": -2.0}
    session.simplex = True
    assert session.weights == pytest.approx({"helpful": 1 / 3, "concise": 1 / 3, "positive": 1 / 3})


def test_live_response_equals_the_batched_engine(engine, session):
    session.set_weight("concise", 0.5)
    session.regenerate(wait=True)
    alone = generate(engine.soup, [session.prompt], session.weights, config=session.sampling)
    assert session.response == alone.texts[0]
    assert set(session.scores) == {"concise", "letters"} and session.first_token_s is not None
    assert not session.generating and session.message == ""


def test_a_new_request_cancels_the_one_in_flight(session):
    first = session.regenerate()
    session.set_weight("helpful", 0.9)
    second = session.regenerate()
    first.join()
    second.join()
    expected = generate(
        session.engine.soup, [session.prompt], session.weights, config=session.sampling
    ).texts[0]
    assert session.response == expected


def test_an_older_request_never_overwrites_a_newer_one(session, monkeypatch):
    """A token of the old request that arrives after the new request began is not shown."""
    engine = session.engine
    real = engine.generate_stream
    shown: list[str] = []
    session.param.watch(lambda e: shown.append(e.new), "response")
    calls: list[int] = []

    def late_token(prompt, weights, sampling, *, cancel, on_text, **kwargs):
        out = real(prompt, weights, sampling, cancel=cancel, on_text=on_text, **kwargs)
        calls.append(1)
        if len(calls) == 1:  # the newer request comes, then the old stream's last token lands
            session.set_weight("helpful", 0.9)
            session.regenerate()
            on_text("STALE")
        return out

    monkeypatch.setattr(engine, "generate_stream", late_token)
    session.regenerate(wait=True)
    session._worker and session._worker.join(60)
    assert len(calls) == 2
    assert "STALE" not in shown
    expected = generate(engine.soup, [session.prompt], session.weights, config=session.sampling)
    assert session.response == expected.texts[0]


def test_empty_prompt_shows_a_message_and_keeps_the_response(session):
    session.regenerate(wait=True)
    before = session.response
    session.prompt = "   "
    session.regenerate(wait=True)
    assert "prompt is empty" in session.message and session.response == before


def test_scorer_error_message(engine, session):
    def explode(prompts, responses):
        return "not numbers"

    engine.objectives.append(Objective("explode", explode))
    try:
        session.regenerate(wait=True)
    finally:
        engine.objectives.pop()
    assert "objective 'explode' returned str, not numbers" in session.message
    assert not session.generating


def test_pins_compare_and_refresh(session):
    for value in (0.1, 0.5, 0.9):
        session.set_weight("positive", value)
        session.regenerate(wait=True)
        session.pin()
    assert len(session.pinned) == 3
    session.prompt = "Write a story"
    session.refresh_pins(wait=True)
    for p in session.pinned:
        assert p["prompt"] == "Write a story" and not p["partial"]
        assert (
            p["response"]
            == generate(session.engine.soup, ["Write a story"], p["weights"], config=session.sampling).texts[
                0
            ]
        )
    session.unpin(1)
    assert len(session.pinned) == 2
    for value in (0.2, 0.3, 0.4, 0.6, 0.7):
        session.set_weight("positive", value)
        session.regenerate(wait=True)
        session.pin()
    assert len(session.pinned) == MAX_PINS and "at most 6" in session.message


def test_a_response_is_labelled_with_what_produced_it_and_goes_stale(session):
    session.simplex = False
    session.set_weight("positive", 2.0)
    session.regenerate(wait=True)
    assert session.response_for["weights"]["positive"] == 2.0 and not session.stale
    session.prompt = "Write a story"  # a prompt edit: the response is marked stale
    assert session.stale and session.response_for["prompt"] != "Write a story"
    session.regenerate(wait=True)
    assert not session.stale
    session.simplex = True  # projects the mix and regenerates for it
    session._worker.join(60)
    assert session.response_for["weights"] == pytest.approx(session.weights)
    assert (
        session.response
        == generate(session.engine.soup, [session.prompt], session.weights, config=session.sampling).texts[0]
    )


def test_pins_keep_their_prompt_refuse_duplicates_and_wait_for_a_streaming_response(session):
    session.regenerate(wait=True)
    session.pin()
    session.pin()  # the same mix, prompt and decoding
    assert len(session.pinned) == 1 and "already pinned" in session.message
    first = session.pinned[0]
    assert first["prompt"] == session.prompt and first["sampling"]["max_new_tokens"] == 6
    session.prompt = "Write a story"
    worker = session.regenerate()
    session.pin()  # while it streams: pinned as partial, completed when it ends
    worker.join()
    second = session.pinned[1]
    assert second["prompt"] == "Write a story" and not second["partial"]
    assert second["response"] == session.response and second["scores"] == session.scores


def test_the_grid_steps_aside_for_an_interactive_request_between_decode_steps(engine):
    """A request made during a grid's decode step is prefilled and decoded to its end before the
    grid takes another step (the grid's rows wait with their caches)."""
    scheduler = engine.scheduler
    original = scheduler._step
    asked: list[int] = []
    done = threading.Event()
    mix = {"helpful": 1.0, "concise": 0.0, "positive": 0.0}

    def spy(priority):  # on the scheduler's thread, at a grid step: a person asks now
        if priority == Priority.GRID and not asked:
            asked.append(len(scheduler.history))
            ticket = scheduler.submit("Why is the sky blue?", mix, SamplingConfig(max_new_tokens=3))
            ticket.future.add_done_callback(lambda f: done.set())
        original(priority)

    scheduler._step = spy
    try:
        run = engine.start_grid(SamplingConfig(max_new_tokens=30), resolution=3)
        assert done.wait(120), "the interactive request never ended"
    finally:
        scheduler._step = original
        engine.cancel_grid(run)
        engine.wait_grid(120)
    after = list(scheduler.history)[asked[0] :]
    interactive = [i for i, (_, p, _) in enumerate(after) if p == Priority.INTERACTIVE]
    assert after[0][1] == Priority.GRID  # the grid's step in flight when the request came
    assert interactive and after[1][0] == "prefill" and after[1][1] == Priority.INTERACTIVE
    # no grid step between the request's prefill and its last token
    assert all(p == Priority.INTERACTIVE for _, p, _ in after[1 : interactive[-1] + 1])


def test_interactive_rows_of_several_callers_share_one_batch(engine):
    """Requests that wait together are decoded together: one forward pass for all their rows."""
    scheduler = engine.scheduler
    names = engine.names
    mixes = [dict.fromkeys(names, 0.0) | {n: 1.0} for n in names]
    start = len(scheduler.history)
    out = scheduler.generate(["Why is the sky blue?"] * len(mixes), mixes, config=SamplingConfig(8))
    widest = max(rows for _, _, rows in list(scheduler.history)[start:])
    assert widest == len(mixes)
    for mix, ids in zip(mixes, out.token_ids, strict=True):  # each row is its mix alone
        alone = generate(engine.soup, ["Why is the sky blue?"], mix, config=SamplingConfig(8))
        assert ids == alone.token_ids[0]


def test_highlight_marks_changed_words():
    out = highlight_differences("the quick red fox <jumps>", "the quick brown fox jumps")
    assert out == "the quick <mark>red</mark> fox <mark>&lt;jumps&gt;</mark>"
    assert highlight_differences("same words", "same words") == "same words"


def test_grid_in_the_background_then_click_a_point(engine, session):
    session.max_new_tokens = 5
    session.start_grid()
    engine.wait_grid(120)
    ds = session.results
    assert not session.grid_running and ds is not None and bool(ds["done"].all())
    assert "grid done" in session.grid_message
    session.load_mix(2)
    assert list(session.weights.values()) == pytest.approx(ds["weights"].values[2].tolist())
    est = session.estimated_scores()
    assert est == pytest.approx(dict(zip(["concise", "letters"], ds["mean"].values[2].tolist(), strict=True)))


def test_the_current_mix_is_measured_like_the_grid(engine, session):
    """The plot's current-mix marker: a grid mix gets its grid means; another mix is generated
    over the grid's prompts with the grid's sampling, as the grid would have measured it."""
    session.max_new_tokens = 5
    session.start_grid()
    engine.wait_grid(120)
    ds = session.results  # mirrored from the grid of this session's settings
    assert ds is session._grid.results and "grid done" in session.grid_message
    names = [str(a) for a in ds["adapter"].values]
    session.weights = dict(zip(names, ds["weights"].values[2].tolist(), strict=True))
    session.regenerate(wait=True)
    assert session.measured == pytest.approx(
        dict(zip(["concise", "letters"], ds["mean"].values[2].tolist(), strict=True))
    )

    off_grid = {"helpful": 0.2, "concise": 0.1, "positive": 0.7}
    session.weights = off_grid
    session.regenerate(wait=True)
    prompts = [str(p) for p in ds["prompt_text"].values]
    texts = generate(engine.soup, prompts, off_grid, config=SamplingConfig(max_new_tokens=5)).texts
    expected = {o.name: float(np.nanmean(o.score(prompts, texts))) for o in engine.objectives}
    assert session.measured == pytest.approx(expected)


def test_a_closed_session_stops_following_its_grid(engine, session):
    session.max_new_tokens = 5
    session.start_grid()
    engine.wait_grid(120)
    run = session._grid
    run.message = "one"
    assert session.grid_message == "one"
    session.close()
    run.message = "two"
    assert session.grid_message == "one"


def test_grids_are_keyed_by_settings_and_shared_by_sessions(engine):
    a, b, c = (Session(engine, max_new_tokens=n) for n in (7, 8, 7))
    try:
        a.start_grid()
        b.start_grid()  # other settings: its own grid, A's front stays A's
        assert a._grid is not b._grid and a.grid_settings != b.grid_settings
        assert c._grid is a._grid  # the same settings: the same grid, shown at once
        c.start_grid()  # joins it
        a.cancel_grid()  # C still waits on it: it keeps running
        assert not a._grid.cancel.is_set() and "keeps running" in a.message
        c.cancel_grid()
        assert c._grid.cancel.is_set()
        engine.wait_grid(120)
        assert "cancelled" in a.grid_message and "grid done" in b.grid_message
        assert b.results is not None and bool(b.results["done"].all())
    finally:
        for s in (a, b, c):
            s.close(wait=60)


def test_export_zip_holds_a_loadable_adapter(engine, session, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    mix = {"helpful": 0.6, "concise": -0.3, "positive": 0.7}
    done = engine.export(mix)
    assert (
        done.zip_path is not None
        and done.zip_path.name == "helpful+0p60_concise-0p30_positive+0p70-adapter.zip"
    )
    assert done.size_bytes > 0 and done.path.parent == engine.export_dir
    with zipfile.ZipFile(io.BytesIO(done.zip_path.read_bytes())) as zf:
        names = zf.namelist()
        zf.extractall(tmp_path)
    folder = tmp_path / names[0].split("/")[0]
    assert {"adapter_config.json", "adapter_model.safetensors", "recipe.yaml"} <= {
        p.name for p in folder.iterdir()
    }
    base = AutoModelForCausalLM.from_pretrained(engine.soup.base_path, dtype=torch.float64)
    loaded = PeftModel.from_pretrained(base, folder).eval()  # loads, and is the mix
    ids = torch.randint(3, len(engine.soup.tokenizer), (2, 7), generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), engine.soup.mixed(mix):
        expected = engine.soup.model(input_ids=ids).logits
        assert torch.allclose(loaded(input_ids=ids).logits, expected, rtol=1e-9, atol=1e-9)


def test_a_merged_export_is_written_to_disk_and_never_zipped(engine, session):
    session.export_format = "merged"
    session.export(wait=True)
    assert session.export_zip == "" and "merged written to" in session.export_status, session.export_status
    folder = session.export_status.split("written to ")[1].split(" (")[0]
    assert (engine.export_dir / folder.split("/")[-1] / "config.json").is_file()
    assert not list(engine.export_dir.glob("*merged*.zip"))


def test_shared_engine_loads_once_per_options_with_the_cli_objective_rule(llama_files, tmp_path, monkeypatch):
    monkeypatch.setenv("PSE_CACHE_DIR", str(tmp_path / "cache"))
    base, adapters = llama_files
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Why is the sky blue?\nWrite a story\nReview the phone\n")
    options = ModelOptions(base=str(base), adapters={n: str(p) for n, p in adapters.items()}, device="cpu")
    app = AppOptions(prompts_file=str(prompts), grid_prompts=2, resolution=2)
    first = shared_engine(options, app)
    try:
        assert shared_engine(options, app) is first  # one model per process for the same options
        # no --objective: the adapters named after built-in objectives, as in the CLI
        assert [o.name for o in first.objectives] == ["positive", "concise"]  # in BUILTIN_ORDER
        assert first.prompts == ["Why is the sky blue?", "Write a story", "Review the phone"]
        assert first.grid_prompts == first.prompts[:2]
        other = shared_engine(
            options, AppOptions(prompts_file=str(prompts), objectives=("readable", "concise"))
        )
        assert other is not first and [o.name for o in other.objectives] == ["readable", "concise"]
        other.soup.close()
    finally:
        first.soup.close()


def test_the_grid_progress_bar_follows_the_state(session):
    import panel as pn

    from explorer.app.views import GridControls

    layout = GridControls(session=session).__panel__()
    bar = next(o for o in layout.objects if isinstance(o, pn.indicators.Progress))
    session.grid_progress = 0.42  # a state change only: no bind returning "" drives the bar
    assert bar.value == 420


def test_on_page_runs_a_change_among_the_pages_events_and_returns_its_result(engine):
    events: queue.Queue = queue.Queue()
    s = Session(engine, dispatch=events.put, max_new_tokens=6)  # a page: events run in its own thread
    ran_in = []

    def page() -> None:
        while (fn := events.get()) is not None:
            ran_in.append(threading.get_ident())
            fn()

    loop = threading.Thread(target=page, daemon=True)
    loop.start()
    try:
        assert (
            s.on_page(lambda: setattr(s, "prompt", "Name three colours.") or s.prompt)
            == "Name three colours."
        )
        assert ran_in == [loop.ident]  # the change ran on the page's thread, not this one
        with pytest.raises(SoupError, match="no adapter named"):  # a failure comes back to the caller
            s.on_page(lambda: s.set_weight("nope", 1.0))
    finally:
        events.put(None)
        loop.join(5)
        s.close()


def test_a_click_storm_runs_one_generation_at_a_time_and_only_the_newest(engine, monkeypatch):
    s = Session(engine, max_new_tokens=6)
    scheduler = engine.scheduler
    prefilled: list[str] = []  # the prompts that reached the model
    real = scheduler._prefill

    def counted(priority, requests):
        prefilled.extend(r.prompt for r in requests)
        return real(priority, requests)

    monkeypatch.setattr(scheduler, "_prefill", counted)
    busy, release = threading.Event(), threading.Event()

    def hold(text: str) -> None:  # another caller's row holds the scheduler while the clicks come
        busy.set()
        release.wait(60)

    other = scheduler.submit("Busy elsewhere", None, SamplingConfig(max_new_tokens=2), on_text=hold)
    assert busy.wait(60)
    before = threading.active_count()
    most = 0
    try:
        for i in range(50):
            s.prompt = f"Request number {i}"
            s.regenerate()
            most = max(most, threading.active_count() - before)
    finally:
        release.set()
    other.result(60)
    worker = s._worker
    if worker is not None:
        worker.join(60)
    assert most == 1  # the session's one generation thread, however many clicks
    assert [p for p in prefilled if p != "Busy elsewhere"] == ["Request number 49"]  # the others never ran
    assert s.response_for["prompt"] == "Request number 49" and s.response and not s.generating
    s.close(wait=5)


def test_the_page_shows_paths_without_the_home_folder(tmp_path, monkeypatch):
    from pathlib import Path

    from explorer.paths import resolve_path, shown_path

    (tmp_path / "home" / "work").mkdir(parents=True)
    monkeypatch.setattr(Path, "home", lambda: tmp_path / "home")
    monkeypatch.setenv("PSE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path / "home" / "work")
    assert shown_path(tmp_path / "home" / "models" / "base") == "~/models/base"
    # issue 22, problem 2: never relative to the server's working folder, nor absolute
    assert shown_path(tmp_path / "home" / "work" / "exports") == "~/work/exports"
    assert shown_path(tmp_path / "cache" / "exports" / "x") == "<cache>/exports/x"
    assert shown_path(tmp_path / "elsewhere" / "exports") == "exports"
    assert resolve_path("<cache>/exports/x") == tmp_path / "cache" / "exports" / "x"
    assert resolve_path("~/models/base") == tmp_path / "home" / "models" / "base"


def test_a_message_naming_html_is_notified_as_text(engine, monkeypatch):
    """Issue 25, item 1: a name like <img src=x onerror=alert(1)> in a message reaches the toast escaped."""
    import panel as pn

    from explorer.app.main import Explorer

    shown: list[str] = []

    class Toasts:
        def error(self, text, duration=None):
            shown.append(text)

    monkeypatch.setattr(type(pn.state), "notifications", property(lambda self: Toasts()))
    explorer = Explorer(engine, max_new_tokens=4)
    try:
        explorer.session.message = "adapter '<img src=x onerror=alert(1)>' failed"
        assert shown == ["adapter '&lt;img src=x onerror=alert(1)&gt;' failed"]  # text: quotes stay quotes
    finally:
        explorer.session.close(wait=60)
