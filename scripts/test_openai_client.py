#!/usr/bin/env python3
"""The official `openai` package against `tenbits serve --openai`.

    python scripts/test_openai_client.py BASE_URL MODEL API_KEY

Checks /v1/models, a chat completion with logprobs, a streamed one whose
pieces add up to the whole, and that a missing or wrong key gets 401.
Exits non-zero with a message on the first failure.
"""

import math
import sys

import openai


def main() -> int:
    base_url, model, key = sys.argv[1:4]
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=60)
    models = [m.id for m in client.models.list()]
    assert models == [model], models
    messages = [
        {"role": "system", "content": "Answer Yes or No."},
        {"role": "user", "content": "Is Paris the capital of France?"},
    ]
    whole = client.chat.completions.create(
        model=model, messages=messages, max_tokens=8, temperature=0,
        logprobs=True, top_logprobs=5)
    choice = whole.choices[0]
    text = choice.message.content
    assert choice.finish_reason in ("stop", "length"), choice.finish_reason
    entries = choice.logprobs.content
    assert entries and len(entries[0].top_logprobs) == 5, entries
    first = entries[0]
    assert first.logprob <= 0 and math.isfinite(first.logprob)
    assert first.top_logprobs[0].logprob >= first.top_logprobs[-1].logprob
    assert whole.usage.completion_tokens >= len(entries)
    streamed = client.chat.completions.create(
        model=model, messages=messages, max_tokens=8, temperature=0, stream=True,
        logprobs=True, top_logprobs=2)
    pieces, finish, streamed_entries = [], None, 0
    for chunk in streamed:
        c = chunk.choices[0]
        if c.delta.content:
            pieces.append(c.delta.content)
        if c.logprobs and c.logprobs.content:
            streamed_entries += len(c.logprobs.content)
        finish = c.finish_reason or finish
    assert "".join(pieces) == text, ("".join(pieces), text)
    assert streamed_entries == len(entries), (streamed_entries, len(entries))
    assert finish == choice.finish_reason, finish
    for bad in ("", "wrong-" + key):
        try:
            openai.OpenAI(base_url=base_url, api_key=bad or "none", max_retries=0).models.list()
        except openai.AuthenticationError:
            continue
        raise AssertionError(f"key {bad!r} was accepted")
    print(f"ok: {model} answered {text!r}; streamed the same; 401 without the key")
    return 0


if __name__ == "__main__":
    sys.exit(main())
