"""``explorer pick``: choose one mix from a frontier, by constraints, by preference weights or at the knee.

explorer pick --frontier front.nc --maximize positive --where "concise<=40" --where "readable>=60"
explorer pick --frontier front.nc --maximize positive --where "concise<=40" --bound ci   # whole interval
explorer pick --frontier front.nc --prefer positive=2,concise=1 --out choice.json
explorer pick --frontier front.nc --knee
explorer pick --frontier front.nc --picks picks.jsonl --out choice.json   # learned from side-by-side picks
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from explorer.atomic import atomic_write, check_output_path
from explorer.cli.guard import run_guarded
from explorer.direction import MAXIMIZE
from explorer.errors import SoupError
from explorer.frontier.choose import (
    BOUNDS,
    KNEE_METHODS,
    Choice,
    Measured,
    parse_constraint,
    pick_constrained,
    pick_knee,
    pick_preference,
)
from explorer.frontier.preference import UTILITY_CHOICES, Learned, learn
from explorer.frontier.results import load_results
from explorer.methods import check_method, not_exported
from explorer.mix import mix_label, parse_weights
from explorer.ownership import refuse_foreign_choice
from explorer.picks import load_picks


def add_pick_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frontier", required=True, metavar="FILE.nc", help="the results of explorer grid")
    rule = p.add_mutually_exclusive_group(required=True)
    rule.add_argument("--maximize", metavar="OBJECTIVE", help="the mix with the highest mean on OBJECTIVE")
    rule.add_argument("--minimize", metavar="OBJECTIVE", help="the mix with the lowest mean on OBJECTIVE")
    rule.add_argument(
        "--prefer",
        metavar="OBJECTIVE=W,...",
        help="preference weights, e.g. positive=2,concise=1: the mix closest to the front's ideal point "
        "when falling short on an objective costs its weight (augmented Chebyshev; objectives "
        "normalised by the front's ideal and nadir; objectives left out weigh 0)",
    )
    rule.add_argument(
        "--knee", action="store_true", help="the knee of the front: where a gain costs the most elsewhere"
    )
    rule.add_argument(
        "--picks",
        metavar="FILE.jsonl",
        help='side-by-side picks, one JSON per line: {"a": {ADAPTER: W, ...}, "b": {...}, "winner": '
        '"a"|"b"|"tie", "prompt": "..."}: learns the trade-off behind them (lambda, with 95%% '
        "intervals), recommends the mix with the highest expected utility and the pair to compare next",
    )
    p.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="CONSTRAINT",
        help='a bound on an objective\'s mean in its own units, e.g. "concise<=40"; repeatable (all must '
        "hold); applies to every rule",
    )
    p.add_argument(
        "--bound",
        choices=BOUNDS,
        default="mean",
        help="mean: bound the means (default); ci: the whole bootstrap interval must meet each bound "
        "(conservative)",
    )
    p.add_argument(
        "--aspiration",
        metavar="OBJECTIVE=LEVEL,...",
        help="with --prefer: the levels to aim at, in each objective's units, e.g. concise=60 (a mix "
        "that reaches a level is not pushed further on it); objectives left out aim at the front's "
        "ideal",
    )
    p.add_argument(
        "--knee-method",
        choices=KNEE_METHODS,
        default="tradeoff",
        help="tradeoff: the least gain per unit of sacrifice to any other front mix (default); distance: "
        "farthest from the plane through the front's extreme mixes",
    )
    p.add_argument(
        "--method",
        metavar="METHOD",
        help="choose among the mixes of one mixing method only (soup or mod); default: across every "
        "method the results hold",
    )
    p.add_argument(
        "--utility",
        choices=UTILITY_CHOICES,
        default="auto",
        help="with --picks: the researcher's utility over the normalised objectives: linear (a weighted "
        "sum), chebyshev (the weighted worst shortfall counts) or auto (the one the picks support "
        "better; default)",
    )
    p.add_argument("--out", metavar="FILE.json", help="also write the choice as JSON (rule, weights, scores)")


def cmd_pick(args: argparse.Namespace) -> int:
    # the options' syntax and the output path are checked before the results are read
    for text in args.where:
        parse_constraint(text)
    preferences = parse_weights(args.prefer, flag="--prefer") if args.prefer is not None else None
    aspiration = (  # objective levels, not mix weights: no weight limit (issue 25)
        parse_weights(args.aspiration, flag="--aspiration", bounded=False) if args.aspiration else None
    )
    if aspiration is not None and preferences is None:
        raise SoupError("--aspiration goes with --prefer: give the preference weights too")
    out = check_output_path(args.out, example="choice.json") if args.out else None
    if out is not None:
        refuse_foreign_choice(out)  # replace only what we wrote (issue 25)

    method = check_method(args.method) if args.method is not None else None
    if args.picks is not None and not Path(args.picks).is_file():
        raise SoupError(
            f"no picks file {args.picks}: give the JSONL file the app or you wrote (one pick per line)"
        )
    picks = load_picks(args.picks) if args.picks is not None else None
    measured = Measured.from_dataset(load_results(args.frontier))
    if method is not None:
        measured = measured.only(method)
    rule = {"where": args.where, "bound": args.bound}
    if picks is not None:
        return _learned(args, measured, picks, out)
    if preferences is not None:
        choice = pick_preference(measured, preferences, aspiration=aspiration, **rule)
    elif args.knee:
        choice = pick_knee(measured, method=args.knee_method, **rule)
    else:
        choice = pick_constrained(measured, maximize=args.maximize, minimize=args.minimize, **rule)
    print(describe(choice, measured))
    _how_to_export(choice, args.frontier)
    if out is not None:
        _write_choice(out, choice.to_dict(), args.frontier)
    return 0


def _how_to_export(choice: Choice, frontier: str) -> None:
    weights = shlex.quote(mix_label(choice.weights).replace(" ", ""))  # names come from a file: quoted
    if choice.mixing == "soup":
        print(
            f"\nexport it: explorer export --weights {weights} --frontier {shlex.quote(str(frontier))} --out ./my-mix"
        )
    else:
        print(f"\n{not_exported(choice.mixing, choice.weights)}")


def _write_choice(out: Path, choice: dict, frontier: str) -> None:
    with atomic_write(out) as tmp:
        tmp.write_text(json.dumps({**choice, "frontier": str(Path(frontier))}, indent=1))
    print(f"wrote {out}")


def _learned(args: argparse.Namespace, measured: Measured, picks: list, out: Path | None) -> int:
    """``--picks``: the trade-off the picks teach, the recommended mix and the pair to compare next."""
    learned = learn(measured, picks, utility=args.utility, where=args.where, bound=args.bound)
    for note in learned.notes:
        print(f"note: {note}")
    print(describe_learned(learned, measured))
    if learned.choice is None:
        if learned.given:
            why = f"none of the {learned.given} pick(s) in {args.picks} compares two measured mixes of this frontier (see the notes above)"
        else:
            why = f"no picks in {args.picks} yet"
        print(
            f"\n{why}: no mix to recommend (and nothing written). Compare the pair above side by "
            "side (the app's compare panel, or by hand) and add a line per pick: "
            '{"a": {...}, "b": {...}, "winner": "a"|"b"|"tie", "prompt": "..."}',
            file=sys.stderr,
        )
        return 2
    _how_to_export(learned.choice, args.frontier)
    if out is not None:
        _write_choice(out, learned.to_dict(), args.frontier)
    return 0


def describe_learned(learned: Learned, measured: Measured) -> str:
    """The learned trade-off for people: lambda with intervals, the recommendation, the next pair."""
    used = (
        f"{learned.picks} pick(s)"
        if learned.picks == learned.given
        else f"{learned.picks} of {learned.given} picks"
    )
    lines = [f"learned from {used}, {learned.utility_text}"]
    width = max(len(o) for o in learned.lam)
    lines.append("trade-off lambda (posterior mean, 95% interval; sums to 1):")
    for o, x in learned.lam.items():
        lo, hi = learned.lam_ci[o]
        lines.append(f"  {o:<{width}}  {x:.2f}  [{lo:.2f}, {hi:.2f}]")
    if learned.choice is not None:
        lines.append(f"recommended (probability it is the best: {learned.p_best:.2f}):")
        lines.append(describe(learned.choice, measured))
    if learned.next_pair is not None and learned.next_rows is not None:
        a, b = (mix_label(w) for w in learned.next_pair)
        lines.append(f"compare next: mix {learned.next_rows[0]} ({a})  vs  mix {learned.next_rows[1]} ({b})")
    else:
        lines.append("compare next: no pair (fewer than two mixes meet the bounds)")
    return "\n".join(lines)


def describe(choice: Choice, measured: Measured) -> str:
    """The choice for people: the rule, the mix, and its mean scores with their intervals."""
    how = "" if set(measured.mixing) == {"soup"} else f" ({choice.mixing})"
    lines = [f"rule: {choice.rule}", f"mix {choice.index}{how}: {mix_label(choice.weights)}"]
    width = max(len(o) for o in choice.scores)
    for o, d in zip(measured.objectives, measured.directions, strict=True):
        interval = ""
        if choice.intervals is not None:
            low, high = choice.intervals[o]
            interval = f"  [{low:.4g}, {high:.4g}]"
        better = "higher" if d == MAXIMIZE else "lower"
        lines.append(f"  {o:<{width}}  {choice.scores[o]:.4g}{interval}  ({better} is better)")
    if choice.ties:
        lines.append(
            f"tied under this rule with mixes {', '.join(map(str, choice.ties))} (shown: the first that "
            "the others do not dominate)"
        )
    return "\n".join(lines)


PICK_HELP = (
    "choose a mix from a frontier file: by constraints, by preference weights, at the knee or as "
    "learned from side-by-side picks"
)


def main(argv: Sequence[str]) -> int:
    """``explorer pick ARGS`` on its own: no model library is imported (``explorer.cli.main``)."""
    p = argparse.ArgumentParser(prog="explorer pick", description=PICK_HELP)
    add_pick_args(p)
    return run_guarded(cmd_pick, p.parse_args(argv))
