"""Build the bundled default urgency model from public mail corpora.

The model that works before a user has trained their own is trained on four complete Enron
mailboxes and the SpamAssassin public corpus; commsproxy/classifier/recipe.py says how.

Run from the repository root (it reads the corpora, never copies them):

    python scripts/train_default_model.py [--data ../shared/data]
    python scripts/train_default_model.py --scoring-form-only [--data ../shared/data]

It writes commsproxy/models/default-urgency.skops (a format that cannot run code when loaded),
its scoring form default-urgency.npz (the same model as plain arrays, what `run` scores with)
and its JSON sidecar, with the checksums the store verifies. Same data and seed give the same
model. ``--scoring-form-only`` adds the scoring form to the model already there, its weights
unchanged, once it scores the corpora's messages as the model does.
"""

from __future__ import annotations

import argparse
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from commsproxy.classifier.dataset import extract_archive
from commsproxy.classifier.features import Sample
from commsproxy.classifier.recipe import enron_people, spamassassin_samples, train_bundled
from commsproxy.classifier.scoring_convert import (
    SAME_SCORE,
    agreement,
    scoring_bytes,
    scoring_form_of,
)
from commsproxy.classifier.workflow import urgency_metrics
from commsproxy.models.store import BUNDLED_DIR, attach_scoring, describe, load_model, save_model

ENRON = "enron-full-mailboxes/enron-full-4users.tar.gz"
SPAMASSASSIN = "spamassassin/spamassassin-ham-spam.tar.gz"


def _extract(tarball: Path, into: Path) -> Path:
    with tarfile.open(tarball) as archive:
        extract_archive(archive, into)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared/data")
    parser.add_argument("--out", type=Path, default=BUNDLED_DIR / "default-urgency.skops")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--scoring-form-only",
        action="store_true",
        help="add the scoring form to the model at --out, checked on the corpora's messages",
    )
    args = parser.parse_args()
    for part in (ENRON, SPAMASSASSIN):
        if not (args.data / part).is_file():
            sys.exit(f"missing {args.data / part}: pass --data DIR (see its PROVENANCE.md)")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="commsproxy-default-") as tmp:
        enron = _extract(args.data / ENRON, Path(tmp) / "enron")
        spam = _extract(args.data / SPAMASSASSIN, Path(tmp) / "spam")
        people = enron_people(enron)
        spam_samples = spamassassin_samples(spam)
    every: list[Sample] = [s for samples, _ in people.values() for s in samples]
    every += spam_samples[0]
    if args.scoring_form_only:
        _add_scoring_form(args.out, every)
        return
    pipeline, report = train_bundled(people, spam_samples, seed=args.seed)
    info = save_model(
        pipeline,
        args.out,
        task="urgency",
        labels=[label for label in ("urgent", "normal", "bulk") if label in report.counts],
        training={
            "counts": report.counts,
            "sources": [ENRON, SPAMASSASSIN],
            "enron_people": {name: len(samples) for name, (samples, _) in people.items()},
            "spamassassin_messages": len(spam_samples[0]),
            "seed": args.seed,
        },
        metrics=urgency_metrics(report),
        threshold=report.threshold,
        thresholds=report.thresholds.as_dict(),
        scoring=scoring_bytes(pipeline, "urgency", every),
    )
    print(describe(info))
    print(report.summary())
    print(f"without history: {report.cold.words()}")
    size = info.path.stat().st_size / 1e6
    print(f"{info.path} ({size:.1f} MB) in {time.perf_counter() - started:.0f} s")


def _add_scoring_form(path: Path, samples: list[Sample]) -> None:
    pipeline, _ = load_model(path, expected_task="urgency")
    form = scoring_form_of(pipeline, "urgency")
    worst = max(
        agreement(pipeline, form, samples[i : i + 1000]) for i in range(0, len(samples), 1000)
    )
    if not worst <= SAME_SCORE:
        sys.exit(f"the scoring form scores up to {worst:.3g} apart from the model: not saved")
    info = attach_scoring(path, form.dumps())
    print(f"{info.scoring_path}: scores {len(samples):,} messages within {worst:.2g} of the model")


if __name__ == "__main__":
    main()
