"""The OpenAI-compatible endpoint, driven by the official ``openai`` client against a real server."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading

import openai
import pytest
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from explorer.api import make_api_app
from explorer.cli import main
from explorer.hosts import allowed_hosts
from explorer.sampling import SamplingConfig, generate
from explorer.scheduler import Priority, Scheduler
from explorer.soup import Soup
from tests.tiny import write_tiny_soup

PROMPT = "Why is the sky blue?"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_tiny_soup(tmp_path_factory.mktemp("api"), "llama")


@pytest.fixture(scope="module")
def server(files):
    """(scheduler, port): the API alone on a tiny float64 soup, served from a background thread."""
    base, adapters = files
    soup = Soup.load(base, adapters, device="cpu", dtype="float64")
    scheduler = Scheduler(soup)
    sock, port = bind_unused_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def listen() -> None:
            HTTPServer(make_api_app(scheduler, allowed_hosts("127.0.0.1", port))).add_sockets([sock])
            started.set()

        loop.run_until_complete(listen())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(30)
    yield scheduler, port
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)
    scheduler.close()
    soup.close()


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=f"http://127.0.0.1:{server[1]}/v1", api_key="unused", max_retries=0)


def test_a_greedy_chat_answer_equals_explorer_generate(files, client, capsys):
    base, adapters = files
    answer = client.chat.completions.create(
        model="soup",
        messages=[{"role": "user", "content": PROMPT}],
        temperature=0,
        max_tokens=12,
        extra_body={"mix": {"helpful": 0.3, "concise": 0.7}},
    )
    argv = ["generate", "--base", str(base), "--prompt", PROMPT, "--max-new-tokens", "12"]
    argv += [a for name, folder in adapters.items() for a in ("--adapter", f"{name}={folder}")]
    assert main([*argv, "--weights", "helpful=0.3,concise=0.7"]) == 0
    printed = capsys.readouterr().out
    text = answer.choices[0].message.content
    assert text and f"] {PROMPT}\n{text}\n" in printed
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert answer.model_extra["mix"] == {"helpful": 0.3, "concise": 0.7, "positive": 0.0}
    assert answer.usage.completion_tokens >= 1


def test_completions_take_raw_text_and_match_generate(server, client):
    soup = server[0].soup
    mix = {"helpful": 1.0, "concise": 0.0, "positive": -0.5}
    out = client.completions.create(
        model="soup", prompt=[PROMPT, "Write a story"], temperature=0, max_tokens=10, extra_body={"mix": mix}
    )
    expected = generate(soup, [PROMPT, "Write a story"], mix, max_new_tokens=10, chat=False)
    assert [c.text for c in out.choices] == expected.texts


def test_the_mix_can_be_written_in_the_model_name(client):
    body = {"mix": {"concise": 1.0}}
    by_body = client.completions.create(
        model="soup", prompt=PROMPT, temperature=0, max_tokens=8, extra_body=body
    )
    by_name = client.completions.create(model="soup:concise=1", prompt=PROMPT, temperature=0, max_tokens=8)
    base = client.completions.create(model="soup", prompt=PROMPT, temperature=0, max_tokens=8)
    assert by_body.choices[0].text == by_name.choices[0].text != base.choices[0].text


@pytest.mark.parametrize("chat", [True, False])
def test_streaming_sends_the_same_text_in_pieces(client, chat):
    kwargs = {
        "model": "soup",
        "temperature": 0.7,
        "seed": 5,
        "max_tokens": 16,
        "extra_body": {"mix": {"helpful": 1}},
    }
    if chat:
        whole = client.chat.completions.create(messages=[{"role": "user", "content": PROMPT}], **kwargs)
        chunks = list(
            client.chat.completions.create(
                messages=[{"role": "user", "content": PROMPT}], stream=True, **kwargs
            )
        )
        pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
        expected = whole.choices[0].message.content
    else:
        whole = client.completions.create(prompt=PROMPT, **kwargs)
        chunks = list(client.completions.create(prompt=PROMPT, stream=True, **kwargs))
        pieces = [c.choices[0].text for c in chunks if c.choices]
        expected = whole.choices[0].text
    assert len([p for p in pieces if p]) >= 2  # streamed, not sent at once
    assert "".join(pieces) == expected
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason


def test_two_concurrent_requests_with_different_mixes_are_decoded_together(server, client):
    scheduler, _ = server
    hold, release = threading.Event(), threading.Event()
    blocker = scheduler.submit(
        PROMPT, None, SamplingConfig(2), on_text=lambda t: (hold.set(), release.wait(60))
    )
    assert hold.wait(60)  # the scheduler is busy: both requests wait together
    start = len(scheduler.history)
    mixes = [
        {"helpful": 1.0, "concise": 0.0, "positive": 0.0},
        {"helpful": 0.0, "concise": 0.0, "positive": 1.0},
    ]
    answers: dict[int, str] = {}

    def ask(i: int) -> None:
        out = client.completions.create(
            model="soup", prompt=PROMPT, temperature=0, max_tokens=10, extra_body={"mix": mixes[i]}
        )
        answers[i] = out.choices[0].text

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    try:
        while len(scheduler._waiting) < 2:
            threading.Event().wait(0.01)
    finally:
        release.set()
    for t in threads:
        t.join(60)
    blocker.result(60)
    assert ("prefill", Priority.INTERACTIVE, 2) in list(scheduler.history)[start:]  # one batch for both
    for i, mix in enumerate(mixes):
        assert answers[i] == generate(scheduler.soup, [PROMPT], mix, max_new_tokens=10, chat=False).texts[0]
    assert answers[0] != answers[1]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"mix": {"nope": 1.0}}, ["nope", "not adapters"]),
        ({"mix": {"helpful": 1e9}}, ["helpful", "beyond"]),
        ({"mix": [1, 2]}, ["'mix' must map"]),
        ({"logprobs": 2}, ["'logprobs' is not supported"]),
    ],
)
def test_bad_requests_are_answered_400_with_a_message(client, extra, words):
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model="soup", prompt=PROMPT, max_tokens=4, extra_body=extra)
    assert err.value.status_code == 400
    assert all(w in err.value.message for w in words)


def test_an_unknown_model_and_an_empty_prompt_are_refused(client):
    with pytest.raises(openai.BadRequestError, match="not served here"):
        client.completions.create(model="gpt-4", prompt=PROMPT, max_tokens=4)
    with pytest.raises(openai.BadRequestError, match="empty"):
        client.chat.completions.create(
            model="soup", messages=[{"role": "user", "content": " "}], max_tokens=4
        )


def post(port: int, path: str, body: bytes, host: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", path, body=body, headers={"Host": host, "Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read().decode()


def test_a_foreign_host_is_refused_and_bad_json_is_a_400(server):
    port = server[1]
    body = json.dumps({"model": "soup", "prompt": PROMPT, "max_tokens": 2}).encode()
    status, text = post(port, "/v1/completions", body, f"evil.example:{port}")
    assert status == 403 and "is not served here" in text
    status, text = post(port, "/v1/completions", b"{not json", f"127.0.0.1:{port}")
    assert status == 400 and "not valid JSON" in json.loads(text)["error"]["message"]
    status, text = post(port, "/v1/completions", body, f"127.0.0.1:{port}")
    assert status == 200 and json.loads(text)["choices"][0]["text"] is not None


def test_models_lists_the_soup_and_its_adapters(client, server):
    models = client.models.list()
    assert [m.id for m in models.data] == ["soup"]
    assert models.model_extra["adapters"] == list(server[0].soup.names)


def test_decoding_time_mixing_through_the_api(server, client, files, capsys):
    scheduler = server[0]
    mix = {"helpful": 0.4, "concise": 0.6, "positive": 0.0}
    out = client.chat.completions.create(
        model="soup",
        messages=[{"role": "user", "content": PROMPT}],
        temperature=0,
        max_tokens=8,
        extra_body={"mix": mix, "method": "mod"},
    )
    expected = scheduler.generate([PROMPT], mix, config=SamplingConfig(8), method="mod")
    assert out.choices[0].message.content == expected.texts[0]
    assert out.model_extra["method"] == "mod"
    base, adapters = files
    argv = ["generate", "--base", str(base), "--prompt", PROMPT, "--max-new-tokens", "8", "--method", "mod"]
    argv += [a for name, folder in adapters.items() for a in ("--adapter", f"{name}={folder}")]
    assert main([*argv, "--weights", "helpful=0.4,concise=0.6"]) == 0
    assert f"; mod] {PROMPT}\n{expected.texts[0]}\n" in capsys.readouterr().out
    with pytest.raises(openai.BadRequestError, match="'method' must be one of"):
        client.completions.create(model="soup", prompt=PROMPT, max_tokens=4, extra_body={"method": "ties"})


def test_a_stop_string_is_never_streamed_in_part(server, client):
    """The streamed pieces add up to the cut answer, even when the stop string spans tokens."""
    kwargs = {"model": "soup:helpful=1", "prompt": PROMPT, "temperature": 0, "max_tokens": 24}
    full = client.completions.create(**kwargs).choices[0].text
    stops = [full[i : i + 3] for i in range(len(full) - 3) if "\ufffd" not in full[i : i + 3]]
    stop = next(s for s in stops if full.find(s) >= 1)  # a stop after some text
    at = full.find(stop)
    whole = client.completions.create(stop=[stop], **kwargs).choices[0]
    stream = client.completions.create(stop=[stop], stream=True, **kwargs)
    pieces = [c.choices[0].text for c in stream if c.choices]
    assert whole.text == full[:at] and "".join(pieces) == full[:at] and whole.finish_reason == "stop"


def test_requests_that_are_not_json_or_too_large_are_refused(server):
    port = server[1]
    body = json.dumps({"model": "soup", "prompt": PROMPT, "max_tokens": 2}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/v1/completions", body=body, headers={"Content-Type": "text/plain"})
    response = conn.getresponse()
    assert response.status == 400 and "application/json" in response.read().decode()
    many = json.dumps({"model": "soup", "prompt": [PROMPT] * 20, "n": 4, "max_tokens": 2}).encode()
    status, text = post(port, "/v1/completions", many, f"127.0.0.1:{port}")
    assert status == 400 and "more than 64 responses" in text
    for bad in ({"n": 2.5}, {"stream": "false"}, {"mix": {"helpful": 10**400}}):
        raw = json.dumps({"model": "soup", "prompt": PROMPT, "max_tokens": 2, **bad}).encode()
        status, text = post(port, "/v1/completions", raw, f"127.0.0.1:{port}")
        assert status == 400, (bad, text)
