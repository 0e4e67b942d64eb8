"""``rlhf-lightning ratings``: ratings from pairwise or ranked judgements, and ``scored`` rows from them.

Reads a JSONL of comparisons (pairwise ``prompt/chosen/rejected`` rows, ranking rows as
``rlhf-lightning sample`` writes them, and the other layouts of :mod:`rlhf_lightning.data.judgements`,
each with an optional annotator field), fits ratings, and writes into the ``--output`` folder
(replaced whole and atomically; never a folder of another kind):

- ``scored.jsonl``: ``{prompt, response, score}`` rows — the ``scored`` format that the reward-model
  stage reads with the ``mse`` loss — one per answer (``item: answer``; score = the answer's rating
  within its prompt) or per (answer, model) (``item: model``; score = the model's rating, plus a
  ``model`` field);
- ``ratings.json``: settings, per-annotator agreement, and per group (prompt, or all models) every
  item's rating, standard error, Elo points, wins/losses/ties, and each fit's log-likelihood.

Scale: ``score``/``rating`` are natural log-odds, ``P(a beats b) = σ(rating_a − rating_b)``, centred
at 0 per group; ``elo`` is the same on the Elo scale (1500 + 400/ln 10 · rating).

Methods: ``bradley_terry`` (penalised maximum likelihood; ``ties: half`` or ``davidson``; ``prior`` λ:
a N(0, 1/λ) prior per rating, 0 = plain MLE, refused when some items never lost), ``plackett_luce``
(whole rankings; no ties; pairwise rows are rankings of 2) and ``elo`` (sequential, K factor, the file
order — with merged votes, the order in which each (prompt, a, b) first appears; a ranking row's pairs
best answer first — or the mean over ``elo_shuffles`` seeded orders; its spread across orders is
reported, not an SE). Pairs cut from one ranking are treated as independent by ``bradley_terry`` and
``elo``, so their standard errors are too small; ``plackett_luce`` counts a ranking once.
Several annotators' votes on one (prompt, a, b) are kept as separate comparisons (``aggregate:
none``) or merged by ``majority`` or ``weighted`` (agreement-weighted) vote
(:mod:`rlhf_lightning.ratings.annotators`). A disconnected comparison graph is an error naming the items
cut off, or ``components: separate`` rates each connected group on its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Optional

from rlhf_lightning.errors import ConfigError


def build_parser() -> Any:
    from jsonargparse import ActionConfigFile, ArgumentParser

    parser = ArgumentParser(prog="rlhf-lightning ratings", exit_on_error=False,
                            description="Fit Bradley-Terry, Plackett-Luce or Elo ratings from pairwise or ranked "
                                        "judgements and write scored rows for reward-model regression.")
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML of these options")
    parser.add_argument("--input", type=str, required=True, help="JSONL of pairwise or ranking rows")
    parser.add_argument("--output", type=str, required=True, help="output folder (replaced atomically)")
    parser.add_argument("--format", type=Optional[str], default=None,
                        help="comparison format of every row (default: detected per row)")
    parser.add_argument("--item", type=Literal["answer", "model"], default="answer",
                        help="answer: rate the answers within each prompt; model: rate models across prompts")
    parser.add_argument("--model_field", type=str, default="model",
                        help="item: model reads chosen_<field>/rejected_<field> or a <field> list per ranking row")
    parser.add_argument("--annotator_field", type=str, default="annotator", help="field naming the annotator")
    parser.add_argument("--aggregate", type=Literal["none", "majority", "weighted"], default="none",
                        help="votes on one (prompt, a, b): every vote counts, majority, or agreement-weighted")
    parser.add_argument("--agreement_iterations", type=int, default=10, help="weighted: passes (1 = one pass)")
    parser.add_argument("--method", type=Literal["bradley_terry", "plackett_luce", "elo"], default="bradley_terry")
    parser.add_argument("--ties", type=Literal["half", "davidson"], default="half",
                        help="bradley_terry: a tie is half a win each, or Davidson's tie model")
    parser.add_argument("--prior", type=float, default=0.1,
                        help="L2 penalty λ (a N(0, 1/λ) prior per rating); 0 = maximum likelihood")
    parser.add_argument("--components", type=Literal["error", "separate"], default="error",
                        help="a disconnected comparison graph: an error, or each connected group rated alone")
    parser.add_argument("--elo_k", type=float, default=32.0, help="elo: K factor")
    parser.add_argument("--elo_shuffles", type=int, default=0, help="elo: 0 = file order; N = mean over N orders")
    parser.add_argument("--seed", type=int, default=0, help="elo: seed of the shuffled orders")
    return parser


def _counts(group: Any) -> list[dict[str, int]]:
    counts = [{"wins": 0, "losses": 0, "ties": 0} for _ in group.items]
    for a, b, y in zip(group.i, group.j, group.y, strict=True):
        if y == 0.5:
            counts[a]["ties"] += 1
            counts[b]["ties"] += 1
        else:
            counts[a]["wins"] += 1
            counts[b]["losses"] += 1
    return counts


def rate(init: Any) -> tuple[list[dict], dict]:
    """``(scored rows, ratings.json content)`` for parsed options ``init``."""
    from rlhf_lightning.commands import rating_fits as fits
    from rlhf_lightning.data.judgements import key_of, read_judgements

    model_items = init.item == "model"
    judgements, rows = read_judgements(init.input, fmt=init.format, annotator_field=init.annotator_field,
                                       model_field=init.model_field if model_items else None)
    if init.method == "plackett_luce":
        if init.aggregate != "none":
            raise ConfigError("aggregate: plackett_luce fits whole rankings, which votes cannot merge; use "
                              "aggregate: none, or method: bradley_terry")
        groups = fits.build_ranking_groups(judgements, model_items=model_items)
        _, annotators, anonymous = fits.aggregate(judgements, "none", model_items=model_items, iterations=1)
        n_comparisons = sum(len(g.rankings) for g in groups)
    else:
        comparisons, annotators, anonymous = fits.aggregate(judgements, init.aggregate, model_items=model_items,
                                                            iterations=init.agreement_iterations)
        groups = fits.build_groups(judgements, comparisons, model_items=model_items)
        n_comparisons = len(comparisons)
    out_groups, rated = [], {}
    for g in groups:
        r = fits.fit_group(g, init, init.input)
        counts = _counts(g)
        items = [{"model" if model_items else "response": item, "rating": r.rating[k], "se": r.se[k],
                  "elo": r.elo[k], "component": r.component[k], **counts[k]} for k, item in enumerate(g.items)]
        if init.method == "elo":
            for entry in items:
                entry["spread"] = entry.pop("se")
        out_groups.append({"prompt": g.prompt, "items": items, "fits": r.fits})
        rated[None if model_items else key_of(g.prompt)] = {
            (item if model_items else key_of(item)): r.rating[k] for k, item in enumerate(g.items)}
    scored, seen = [], set()
    for j in judgements:
        for answer, model in ((j.a, j.a_model), (j.b, j.b_model)):
            key = (key_of(j.prompt), key_of(answer), model)
            if key in seen:
                continue
            seen.add(key)
            group = rated[None if model_items else key_of(j.prompt)]
            row = {"prompt": j.prompt, "response": answer, "score": group[model if model_items else key_of(answer)]}
            if model_items:
                row["model"] = model
            scored.append(row)
    summary = {
        "input": init.input, "rows": rows, "judgements": len(judgements), "comparisons": n_comparisons,
        "method": init.method, "ties": init.ties if init.method == "bradley_terry" else None,
        "prior": init.prior if init.method != "elo" else None, "item": init.item, "aggregate": init.aggregate,
        "components": init.components, "elo_k": init.elo_k if init.method == "elo" else None,
        "elo_shuffles": init.elo_shuffles if init.method == "elo" else None, "seed": init.seed,
        "scale": "rating: natural log-odds, P(a beats b) = sigmoid(rating_a - rating_b), centred at 0 per group "
                 "(per connected component with components: separate); elo = 1500 + 400/ln(10) * rating",
        "annotators": annotators, "anonymous_votes": anonymous, "groups": out_groups,
    }
    return scored, summary


def main(argv: list[str] | None = None) -> int:
    from rlhf_lightning.atomic_paths import atomic_directory
    from rlhf_lightning.commands import rating_fits as fits
    from rlhf_lightning.commands.parsing import parse_and_instantiate
    from rlhf_lightning.output_folders import check_replaceable

    init = parse_and_instantiate(build_parser(), argv, "ratings")
    fits.check_settings(init)
    if Path(init.input).expanduser().exists():  # the output folder must not swallow its own input
        check_replaceable(init.output, "ratings", [init.input])
    scored, summary = rate(init)
    with atomic_directory(init.output, what="ratings") as tmp:
        with (tmp / "scored.jsonl").open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in scored)
        (tmp / "ratings.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    items = sum(len(g["items"]) for g in summary["groups"])
    print(f"rated {items} {'models' if init.item == 'model' else 'answers'} in {len(summary['groups'])} group(s) "
          f"from {summary['comparisons']} comparisons ({init.method}); {len(scored)} scored rows")
    for name, a in summary["annotators"].items():
        shown = "n/a" if a["agreement"] is None else f"{a['agreement']:.3f}"
        print(f"  annotator {name}: {a['votes']} votes, agreement with the others' majority {shown} "
              f"over {a['compared']}, weight {a['weight']:.3f}")
    print(Path(init.output).expanduser().absolute())
    return 0
