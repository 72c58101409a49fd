"""Training memory: ``train_accounts`` against a plain TF-IDF + LinearSVC on the same mail.

The five Enron foldering users pooled (labels user/folder, the accounts model's task; the
corpus in ../shared/data/enron-foldering, see its PROVENANCE.md) are read once per run, then
each trainer runs in its own fresh process, one after the other, so that each peak is its own:

- baseline: ``TfidfVectorizer`` (a vocabulary, sublinear tf) on subject and body, then
  ``LinearSVC(C=0.5, class_weight="balanced")``: the textbook folder classifier;
- commsproxy: ``train_accounts`` as ``commsproxy train`` runs it (its probe fit for the filing
  threshold and the final fit).

Each process reports its peak resident memory (VmHWM) and the resident memory after reading
the mail, before fitting; the fit's own peak is the difference. Target: commsproxy's peak at
most 2x the baseline's (whole process, as a user sees it). Printed: a markdown table; written:
JSON (``--json``, default benchmarks/results/training_memory.json). Exit status 0 when the
target is met, 1 when not, 2 when the benchmark could not run.

    python benchmarks/training_memory.py [--data ../shared/data] [--users N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from corpora import DEFAULT_DATA, DataMissing, print_now, unpack

REPO = Path(__file__).resolve().parents[1]
DEFAULT_JSON = REPO / "benchmarks" / "results" / "training_memory.json"
TARGET_RATIO = 2.0

# What each child runs: read the pooled foldering mail, note the memory, fit, report the peak.
_CHILD = """
import json, sys, time
sys.path.insert(0, {benchmarks!r})
from accuracy import pooled_foldering

def status(field):
    for line in open('/proc/self/status'):
        if line.startswith(field + ':'):
            return int(line.split()[1])
    raise SystemExit('no ' + field)

samples, labels, _ = pooled_foldering(__import__('pathlib').Path({root!r}))
users = sorted({{label.split('/')[0] for label in labels}})[:{users}]
kept = [(s, y) for s, y in zip(samples, labels) if y.split('/')[0] in users]
samples, labels = [s for s, _ in kept], [y for _, y in kept]
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC
from commsproxy.classifier.features import full_text_of
from commsproxy.classifier.train import train_accounts
loaded = status('VmRSS')
started = time.perf_counter()
if {which!r} == 'baseline':
    model = Pipeline([
        ('tfidf', TfidfVectorizer(sublinear_tf=True)),
        ('svm', LinearSVC(C=0.5, class_weight='balanced', random_state=0, max_iter=5000)),
    ]).fit(full_text_of(samples), labels)
    features = len(model.named_steps['tfidf'].vocabulary_)
else:
    model, report = train_accounts(samples, labels)
    features = model.named_steps['model'].coef_.shape[1]
print(json.dumps({{
    'messages': len(samples), 'classes': len(set(labels)), 'features': features,
    'rss_after_reading_kb': loaded, 'peak_kb': status('VmHWM'),
    'fit_seconds': time.perf_counter() - started,
}}))
"""


def run_child(which: str, root: Path, users: int) -> dict[str, Any]:
    code = _CHILD.format(
        benchmarks=str(REPO / "benchmarks"), root=str(root), users=users, which=which
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{which} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["fit_peak_kb"] = result["peak_kb"] - result["rss_after_reading_kb"]
    return result


def table(report: dict[str, Any]) -> list[str]:
    base, mine = report["baseline"], report["commsproxy"]
    rows = [
        ("messages / classes", f"{base['messages']} / {base['classes']}", ""),
        ("features (baseline: vocabulary; commsproxy: hashed)",
         f"{base['features']} / {mine['features']}", ""),
    ]  # fmt: skip
    for name, row in (("baseline TF-IDF + LinearSVC", base), ("commsproxy train_accounts", mine)):
        rows += [
            (f"{name}: peak RSS (whole process)", f"{row['peak_kb'] / 1024:.0f} MB", ""),
            (f"{name}: peak beyond the read mail", f"{row['fit_peak_kb'] / 1024:.0f} MB", ""),
            (f"{name}: fit time", f"{row['fit_seconds']:.1f} s", ""),
        ]
    rows += [
        ("commsproxy / baseline, whole process", f"{report['ratio']:.2f}x",
         f"<= {TARGET_RATIO:g}x"),
        ("commsproxy / baseline, beyond the read mail", f"{report['fit_ratio']:.2f}x", ""),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    lines = [f"| {'measure':<{width}} | {'result':<18} | target |", f"|{'-' * (width + 2)}|--|--|"]
    return lines + [f"| {a:<{width}} | {b:<18} | {c} |" for a, b, c in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the corpora directory")
    parser.add_argument("--users", type=int, default=5, help="foldering users pooled (5)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = unpack(args.data, Path(tmp), ["foldering"], print_now)["foldering"]
            report: dict[str, Any] = {"cpus": os.cpu_count(), "users": args.users}
            for which in ("baseline", "commsproxy"):
                print_now(f"{which}: fitting in a fresh process ...")
                report[which] = run_child(which, root, args.users)
    except (DataMissing, RuntimeError) as err:
        print(f"training memory: {err}", file=sys.stderr)
        return 2
    report["ratio"] = report["commsproxy"]["peak_kb"] / report["baseline"]["peak_kb"]
    report["fit_ratio"] = report["commsproxy"]["fit_peak_kb"] / max(
        report["baseline"]["fit_peak_kb"], 1
    )
    report["elapsed_seconds"] = round(time.perf_counter() - began, 1)
    print("\n".join(table(report)))
    ok = report["ratio"] <= TARGET_RATIO
    print(f"{'PASS' if ok else 'MISS'}  train_accounts peak <= {TARGET_RATIO:g}x the baseline's "
          f"({report['ratio']:.2f}x)")  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
