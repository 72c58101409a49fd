"""Build the bundled default urgency model from public mail corpora.

The model that works before a user has trained their own is trained on:

- four complete Enron mailboxes (enron-full-mailboxes: inbox *and* sent folders), labelled the
  way ``commsproxy train`` labels a user's mail: replied to within 4 hours = urgent, list and
  machine mail = bulk, the rest normal, with the originals that only survive as quotes in
  replies rebuilt from them; each person with their own social history;
- the SpamAssassin public corpus: spam is bulk (it must never be urgent), ham is labelled by its
  list headers (bulk) or normal.

Run from the repository root (it reads the corpora, never copies them):

    python scripts/train_default_model.py [--data ../shared/data]

It writes commsproxy/models/default-urgency.joblib and its JSON sidecar, with the checksum the
store verifies. Same data and seed give the same model.
"""

from __future__ import annotations

import argparse
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from commsproxy.classifier.dataset import ReadStats, extract_archive, iter_mailbox
from commsproxy.classifier.features import Sample
from commsproxy.classifier.labels import bulk_reason
from commsproxy.classifier.mail import Mail
from commsproxy.classifier.train import train_urgency
from commsproxy.classifier.workflow import labelled_samples
from commsproxy.models.store import BUNDLED_DIR, describe, save_model

ENRON = "enron-full-mailboxes/enron-full-4users.tar.gz"
SPAMASSASSIN = "spamassassin/spamassassin-ham-spam.tar.gz"


def _extract(tarball: Path, into: Path) -> Path:
    with tarfile.open(tarball) as archive:
        extract_archive(archive, into)
    return into


def enron_samples(root: Path) -> tuple[list[Sample], list[str], dict[str, int]]:
    samples: list[Sample] = []
    labels: list[str] = []
    summary: dict[str, int] = {}
    for person in sorted(p for p in (root / "maildir").iterdir() if p.is_dir()):
        stats = ReadStats()
        mails = list(iter_mailbox(person, stats=stats))

        def is_sent(mail: Mail, stats: ReadStats = stats) -> bool:
            return stats.is_sent(mail.folder)

        result, person_samples, person_labels = labelled_samples(mails, is_sent)
        samples += person_samples
        labels += person_labels
        summary[person.name] = len(person_samples)
        print(f"{person.name}: {result.summary()}", file=sys.stderr)
    return samples, labels, summary


def spamassassin_samples(root: Path) -> tuple[list[Sample], list[str]]:
    samples: list[Sample] = []
    labels: list[str] = []
    for group in sorted(p for p in (root / "spamassassin").iterdir() if p.is_dir()):
        for mail in iter_mailbox(group):
            if mail.date is None:
                continue
            samples.append(Sample(mail))
            if group.name.startswith("spam") or bulk_reason(mail):
                labels.append("bulk")
            else:
                labels.append("normal")
    return samples, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared/data")
    parser.add_argument("--out", type=Path, default=BUNDLED_DIR / "default-urgency.joblib")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for part in (ENRON, SPAMASSASSIN):
        if not (args.data / part).is_file():
            sys.exit(f"missing {args.data / part}: pass --data DIR (see its PROVENANCE.md)")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="commsproxy-default-") as tmp:
        enron = _extract(args.data / ENRON, Path(tmp) / "enron")
        spam = _extract(args.data / SPAMASSASSIN, Path(tmp) / "spam")
        samples, labels, people = enron_samples(enron)
        extra_samples, extra_labels = spamassassin_samples(spam)
    samples += extra_samples
    labels += extra_labels
    order = sorted(range(len(samples)), key=lambda i: samples[i].mail.date)  # type: ignore[arg-type,return-value]
    samples = [samples[i] for i in order]
    labels = [labels[i] for i in order]
    pipeline, report = train_urgency(samples, labels, seed=args.seed)
    info = save_model(
        pipeline,
        args.out,
        task="urgency",
        labels=[label for label in ("urgent", "normal", "bulk") if label in report.counts],
        training={
            "counts": report.counts,
            "sources": [ENRON, SPAMASSASSIN],
            "enron_people": people,
            "spamassassin_messages": len(extra_samples),
            "seed": args.seed,
        },
        metrics={
            "urgent_delivered": report.urgent_delivered,
            "held": report.held,
            "per_class": {k: vars(v) for k, v in report.per_class.items()},
        },
        threshold=report.threshold,
    )
    print(describe(info))
    print(report.summary())
    size = info.path.stat().st_size / 1e6
    print(f"{info.path} ({size:.1f} MB) in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
