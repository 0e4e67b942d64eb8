"""The benchmark meter's token fingerprint: what counts as trained, prompt and generated tokens."""

from __future__ import annotations

import torch

from tests.benchmarks.meter import Fingerprint, Meter, sequences_of


class _Cache:
    def __init__(self, seen: int):
        self.seen = seen

    def get_seq_length(self) -> int:
        return self.seen


class _Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None, cache=None):
        return self.w * input_ids.float()


def test_sequences_split_packed_rows_and_drop_padding():
    ids = torch.tensor([[5, 6, 7, 8, 9, 0], [0, 0, 3, 4, 0, 0]])
    real = ids != 0
    pos = torch.tensor([[0, 1, 0, 1, 2, 0], [0, 0, 0, 1, 0, 0]])
    assert sequences_of(ids, real, pos) == [[5, 6], [7, 8, 9], [3, 4]]
    flat = torch.tensor([[5, 6, 7, 8, 9]])  # padding-free: one row, restarting positions
    assert sequences_of(flat, flat != 0, torch.tensor([[0, 1, 0, 1, 2]])) == [[5, 6], [7, 8, 9]]
    assert sequences_of(ids, real) == [[5, 6, 7, 8, 9], [3, 4]]


def test_fingerprint_ignores_order_and_sees_any_change():
    a, b, c = Fingerprint(), Fingerprint(), Fingerprint()
    for seq in ([1, 2], [3]):
        a.add(seq)
    for seq in ([3], [1, 2]):
        b.add(seq)
    for seq in ([3], [1, 3]):
        c.add(seq)
    assert a.result() == b.result() and a.result()["tokens"] == 3
    assert a.result()["sha256"] != c.result()["sha256"]


def test_the_hook_fingerprints_training_forwards_prompts_and_generated_tokens(tmp_path):
    meter, model = Meter(0, str(tmp_path / "m.json")), _Model()
    meter.attach(model, pad_token_id=0)
    model(input_ids=torch.tensor([[4, 5, 0]]), attention_mask=torch.tensor([[1, 1, 0]]))  # training forward
    with torch.no_grad():
        model(input_ids=torch.tensor([[4, 5, 6]]))  # a reference / old-log-prob pass: not fingerprinted
        model(input_ids=torch.tensor([[0, 7, 8], [9, 9, 9]]), attention_mask=torch.tensor([[0, 1, 1], [1, 1, 1]]),
              past_key_values=_Cache(0))  # prefill: prompts, one generated token each
        model(input_ids=torch.tensor([[1], [2]]), cache=_Cache(3))  # a decoding step (transformers 5.24 name)
    meter.step_end()
    fp = meter.finish()["fingerprint"]
    assert (fp["trained"]["sequences"], fp["trained"]["tokens"]) == (1, 2)
    assert (fp["prompts"]["sequences"], fp["prompts"]["tokens"]) == (2, 5)
    assert fp["generated_tokens"] == 4
