"""The app with a mixing method: the live response, pins, grids per method overlaid, export refused."""

from __future__ import annotations

from explorer.app.views import method_table
from explorer.frontier.results import hypervolume_by_method, methods_of
from explorer.sampling import SamplingConfig


def test_the_live_response_follows_the_method_and_says_it(engine, session):
    session.weights = {"helpful": 0.5, "concise": 0.5, "positive": 0.0}
    session.method = "mod"
    session.regenerate(wait=True)
    expected = engine.scheduler.generate(
        [session.prompt], session.weights, config=session.sampling, method="mod"
    )
    assert session.response == expected.texts[0]
    assert session.response_for["method"] == "mod" and not session.stale
    session.method = "soup"  # the response no longer matches what is on the page
    assert session.stale


def test_pins_of_the_same_weights_under_two_methods_are_two_pins(engine, session):
    session.weights = {"helpful": 0.5, "concise": 0.5, "positive": 0.0}
    for method in ("soup", "mod"):
        session.method = method
        session.regenerate(wait=True)
        session.pin()
    assert [p["method"] for p in session.pinned] == ["soup", "mod"] and session.message == ""
    session.prompt = "Write a story"
    session.refresh_pins(wait=True).join()
    for pin in session.pinned:
        expected = engine.scheduler.generate(
            ["Write a story"], pin["weights"], config=session.sampling, method=pin["method"]
        )
        assert pin["response"] == expected.texts[0] and pin["method"] in ("soup", "mod")


def test_grids_of_two_methods_are_overlaid_with_their_hypervolumes(engine, session):
    session.max_new_tokens = 4
    for method in ("soup", "mod"):
        session.method = method
        session.start_grid()
        engine.wait_grid(120)
    session.gather_method_fronts()
    joined = session.method_fronts
    assert joined is not None and set(methods_of(joined)) == {"soup", "mod"}
    table = method_table(joined, session.method_speeds)
    for method, (hv, _, _) in hypervolume_by_method(joined).items():
        assert f"<b>{method}</b>" in table and f"{hv:.3g}" in table
    assert session.grid_settings.endswith("greedy") and "(mod)" in session.grid_settings
    engine.cancel_grid()


def test_a_mod_mix_is_not_exported(engine, session):
    before = sorted(engine.export_dir.glob("*")) if engine.export_dir.exists() else []
    session.method = "mod"
    session.export(wait=True)
    assert "no single adapter" in session.message and not session.exporting
    after = sorted(engine.export_dir.glob("*")) if engine.export_dir.exists() else []
    assert after == before  # nothing written


def test_grid_specs_and_settings_keys_differ_by_method(engine):
    from explorer.app.engine import settings_key

    soup = engine.grid_spec(SamplingConfig(4))
    mod = engine.grid_spec(SamplingConfig(4), method="mod")
    assert settings_key(soup) != settings_key(mod) and set(mod.mix_methods) == {"mod"}
