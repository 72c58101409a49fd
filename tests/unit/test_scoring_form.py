"""The scoring form scores as the scikit-learn model does, and its file is checked.

The reference is the fitted Pipeline itself: over a few hundred messages written here (people,
lists, spam-like mail, HTML, long and non-ASCII words, cues, cold, warm and reply contexts),
the form built from the bundled model, from a blend and from accounts models must give the
same feature rows, scores within 1e-9, and the same labels, scores and reasons. benchmarks/
triage.py compares them on thousands of corpus messages as well.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sklearn.pipeline import Pipeline
from sklearn.utils import murmurhash3_32 as sklearn_murmur

from commsproxy.classifier.features import Context, Sample
from commsproxy.classifier.live_model import load_live, resolve_live
from commsproxy.classifier.mail import parse_mail
from commsproxy.classifier.murmur import columns, murmurhash3_32
from commsproxy.classifier.pipeline import accounts_pipeline, blend_pipeline, urgency_pipeline
from commsproxy.classifier.predict import Classifier, LoadedModel
from commsproxy.classifier.scoring_convert import (
    SAME_SCORE,
    agreement,
    scoring_bytes,
    scoring_form_of,
)
from commsproxy.classifier.scoring_form import FormError, ScoringForm
from commsproxy.classifier.stop_words import ENGLISH_STOP_WORDS
from commsproxy.models.store import (
    TamperedModelError,
    load_bundled,
    read_sidecar,
    save_model,
)

REPO = Path(__file__).resolve().parents[2]
ME = "me@example.com"


@dataclass
class History:
    received: int
    replied: int
    median_reply_minutes: float | None


_WORDS = """
invoice server outage meeting lunch contract review shipment offer free winner unsubscribe
newsletter report quarterly déjà-vu naïve straße 東京 o'brien re-send deadline budget forecast
ASAP urgent call tomorrow today price viagra casino
"""


def message(i: int, rng: random.Random) -> bytes:
    """One of several kinds of mail, with words drawn so that every batch differs."""
    words = _WORDS.split()
    body = " ".join(rng.choice(words) for _ in range(rng.randint(0, 120)))
    kind = i % 6
    head = f"Message-ID: <m{i}@example.org>\nDate: Mon, 05 Jan 2026 10:{i % 60:02d}:00 +0000\n"
    if kind == 0:
        head += f"From: Ann <ann{i % 7}@acme.example>\nTo: {ME}\nSubject: Re: contract {i}\n"
        head += f"In-Reply-To: <x{i}@example.com>\n"
    elif kind == 1:
        head += f"From: news{i % 4}@lists.example.org\nTo: {ME}\nSubject: Weekly digest {i}\n"
        head += "List-Id: <weekly.lists.example.org>\nList-Unsubscribe: <mailto:x@y.org>\n"
        head += "Precedence: bulk\n"
    elif kind == 2:
        head += f"From: winner{i}@casino.example\nTo: someone{i}@other.example\n"
        head += f"Subject: URGENT you won {i}\nX-Priority: 1\n"
        head += "Content-Type: text/html\n"
        body = f"<html><body><p>{body}</p><a href='x'>click {'a' * (i % 90)}</a></body></html>"
    elif kind == 3:
        cc = ", ".join(f"p{j}@corp.example" for j in range(i % 14))
        head += f"From: boss@corp.example\nTo: {ME}, team@corp.example\nCc: {cc}\n"
        head += f"Subject: Fwd: server down, call me back today {i}\nImportance: high\n"
    elif kind == 4:
        head += f"From: noreply@service{i % 3}.example\nTo: {ME}\nSubject: Your receipt\n"
        head += "Auto-Submitted: auto-generated\n"
        body += " " + "x9" * (i % 50) + " " + "ab" * (i % 300)  # long tokens
    else:
        head += f"From: {ME}\nTo: friend{i}@mail.example\nSubject: {i}\n"
        body = ""
    return (head + "\n" + body + "\n").encode("utf-8")


def context(i: int) -> Context:
    if i % 3 == 0:
        return Context(user_addresses=frozenset({ME}), history_known=False)
    if i % 3 == 1:
        return Context(
            user_addresses=frozenset({ME}),
            sender=History(i % 7, i % 3, 30.0 if i % 2 else None),
            domain=History(i % 11, i % 4, 3000.0),
            relation=("colleague", "customer", None)[i % 3],
        )
    return Context(user_addresses=frozenset({ME}), replies_to_user=True)


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    rng = random.Random(7)
    return [Sample(parse_mail(message(i, rng)), context(i)) for i in range(360)]


@pytest.fixture(scope="module")
def bundled() -> Pipeline:
    pipeline, _ = load_bundled("urgency")
    assert isinstance(pipeline, Pipeline)
    return pipeline


def same_verdicts(pipeline: Pipeline, form: ScoringForm, samples: list[Sample]) -> None:
    """Rows, scores, and every verdict, with three reasons and with all of them."""
    assert agreement(pipeline, form, samples) < SAME_SCORE
    _, info = load_bundled("urgency")
    theirs = Classifier(LoadedModel.from_info(pipeline, info))
    ours = Classifier(LoadedModel.from_info(form, info))
    for kept in (3, None):
        a = theirs.classify(samples, explain=True, reasons_kept=kept)
        b = ours.classify(samples, explain=True, reasons_kept=kept)
        assert [(v.label, v.p_urgent, v.threshold, v.reasons) for v in a] == [
            (v.label, v.p_urgent, v.threshold, v.reasons) for v in b
        ]
    assert {v.label for v in a} >= {"urgent", "normal", "bulk"}  # the messages vary


# -- the hash ---------------------------------------------------------------------------------


def test_murmur_is_scikit_learns() -> None:
    rng = random.Random(1)
    alphabet = "abcXYZ019_'-éßü東京\x00 "
    keys = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 70))) for _ in range(5000)]
    encoded = [k.encode("utf-8") for k in keys]
    expected = [sklearn_murmur(k, seed=0) for k in encoded]
    assert murmurhash3_32(encoded).tolist() == expected
    index, sign = columns(keys, 1 << 18)
    assert index.tolist() == [abs(h) % (1 << 18) for h in expected]
    assert sign.tolist() == [1.0 if h >= 0 else -1.0 for h in expected]
    assert murmurhash3_32([]).size == 0


# -- the same scores --------------------------------------------------------------------------


def test_the_bundled_models_form_gives_the_same_rows_scores_and_reasons(
    samples: list[Sample], bundled: Pipeline
) -> None:
    form = ScoringForm.loads(scoring_form_of(bundled, "urgency").dumps())
    theirs = bundled.named_steps["features"].transform(samples).tocsr()
    ours = form.score(samples).rows[0][3]
    assert np.array_equal(theirs.indptr, ours.indptr)
    assert np.array_equal(theirs.indices, ours.indices)
    assert np.array_equal(theirs.data, ours.data)  # bit for bit, float32
    same_verdicts(bundled, form, samples)
    # Batches of one, as live triage often scores.
    for sample in samples[:30]:
        assert agreement(bundled, form, [sample]) < SAME_SCORE


def test_the_shipped_form_is_the_bundled_models(samples: list[Sample], bundled: Pipeline) -> None:
    form, info = resolve_live("bundled", "urgency")
    assert isinstance(form, ScoringForm)
    assert info.bundled
    assert info.scoring_sha256 is not None
    same_verdicts(bundled, form, samples)


def test_a_blends_form_gives_the_same_verdicts(samples: list[Sample], bundled: Pipeline) -> None:
    blend = blend_pipeline([("mine", bundled, 0.7), ("bundled", bundled, 0.3)], "bundled")
    form = ScoringForm.loads(scoring_form_of(blend, "urgency").dumps())
    assert form.blend
    assert len(form.score(samples[:1]).rows) == 2
    same_verdicts(blend, form, samples)


@pytest.mark.parametrize("accounts", [2, 5])
def test_an_accounts_models_form_gives_the_same_scores(
    samples: list[Sample], accounts: int
) -> None:
    labels = [f"acct{i % accounts}" for i in range(len(samples))]
    pipeline = accounts_pipeline().fit(samples, labels)
    form = ScoringForm.loads(scoring_form_of(pipeline, "accounts").dumps())
    assert agreement(pipeline, form, samples) < SAME_SCORE
    theirs = Classifier(accounts=LoadedModel(pipeline, 0.3)).classify(samples, explain=True)
    ours = Classifier(accounts=LoadedModel(form, 0.3)).classify(samples, explain=True)
    assert [(v.account, v.account_score, v.reasons) for v in theirs] == [
        (v.account, v.account_score, v.reasons) for v in ours
    ]


def test_a_model_the_form_does_not_cover_is_left_to_scikit_learn(
    samples: list[Sample], caplog: pytest.LogCaptureFixture
) -> None:
    labels = ["urgent" if i % 5 == 0 else "bulk" if i % 6 == 1 else "normal" for i in range(360)]
    plain = urgency_pipeline(calibrate=False).fit(samples, labels)
    with pytest.raises(FormError, match="SGDClassifier"):
        scoring_form_of(plain, "urgency")
    with caplog.at_level(logging.INFO):
        assert scoring_bytes(plain, "urgency", samples) is None
    assert "scores it with scikit-learn" in caplog.text


# -- the file ---------------------------------------------------------------------------------


def test_a_form_file_holds_no_pickle_and_bad_bytes_are_refused(bundled: Pipeline) -> None:
    import io

    for bad in (b"", b"not a zip", b"PK\x03\x04" + b"\x00" * 40):
        with pytest.raises(FormError):
            ScoringForm.loads(bad)
    objects = io.BytesIO()
    np.savez(objects, spec=np.array([{"a": 1}], dtype=object))  # would need a pickle
    with pytest.raises(FormError):
        ScoringForm.loads(objects.getvalue())
    data = scoring_form_of(bundled, "urgency").dumps()
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        assert all(npz[name].dtype != object for name in npz.files)
        spec = json.loads(npz["spec"].tobytes())
    spec["parts"][0]["words"]["view"] = "os.system"
    arrays = dict(np.load(io.BytesIO(data), allow_pickle=False))
    arrays["spec"] = np.frombuffer(json.dumps(spec).encode(), dtype=np.uint8)
    changed = io.BytesIO()
    np.savez(changed, **arrays)
    with pytest.raises(FormError, match="unknown view"):
        ScoringForm.loads(changed.getvalue())


def save(bundled: Pipeline, path: Path, scoring: bytes | None) -> None:
    save_model(
        bundled,
        path,
        task="urgency",
        labels=["urgent", "normal", "bulk"],
        training={"counts": {"urgent": 1, "normal": 1, "bulk": 1}},
        metrics={},
        threshold=0.07,
        scoring=scoring,
    )


def test_run_loads_the_form_refuses_a_changed_one_and_falls_back_without_one(
    tmp_path: Path, bundled: Pipeline, samples: list[Sample], caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "urgency.skops"
    data = scoring_bytes(bundled, "urgency", samples)
    assert data is not None
    save(bundled, path, data)
    info = read_sidecar(path)
    assert info.scoring_sha256 == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "urgency.npz").read_bytes() == data
    model, _ = load_live(path, "urgency")
    assert isinstance(model, ScoringForm)

    (tmp_path / "urgency.npz").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(TamperedModelError, match="scoring form"):
        load_live(path, "urgency")

    (tmp_path / "urgency.npz").unlink()  # the model copied alone
    with caplog.at_level(logging.INFO):
        model, _ = load_live(path, "urgency")
    assert isinstance(model, Pipeline)
    assert "is missing; it is scored with scikit-learn" in caplog.text

    save(bundled, path, data)
    save(bundled, path, None)  # a later save without a form removes the earlier one
    assert not (tmp_path / "urgency.npz").exists()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        model, _ = load_live(path, "urgency")
    assert isinstance(model, Pipeline)
    assert "saved without a scoring form" in caplog.text


def test_training_saves_the_form_that_run_then_scores_with(tmp_path: Path) -> None:
    from commsproxy.classifier.workflow import train_accounts_from_folders

    rng = random.Random(3)
    for account in ("acme", "globex", "initech"):
        folder = tmp_path / "folders" / account
        folder.mkdir(parents=True)
        for i in range(40):
            text = message(i, rng).replace(b"Subject: ", f"Subject: {account} ".encode(), 1)
            (folder / f"{i}.eml").write_bytes(text)
    out = tmp_path / "accounts.skops"
    training = train_accounts_from_folders(tmp_path / "folders", out)
    assert training.info.scoring_sha256 is not None
    assert training.info.scoring_path.exists()
    model, _ = load_live(out, "accounts")
    assert isinstance(model, ScoringForm)


def test_the_stop_words_are_scikit_learns() -> None:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS as THEIRS

    assert ENGLISH_STOP_WORDS == THEIRS


# -- what run imports -------------------------------------------------------------------------

RUN_PATH = textwrap.dedent(
    """
    import sys
    import commsproxy.service
    from commsproxy.classifier.live_model import resolve_live
    from commsproxy.classifier.mail import parse_mail
    from commsproxy.classifier.predict import Classifier, LoadedModel
    from commsproxy.classifier.scoring_form import ScoringForm
    from commsproxy.triage.decide import ModelDecider

    model, info = resolve_live("bundled", "urgency")
    assert isinstance(model, ScoringForm), type(model)
    decider = ModelDecider(Classifier(LoadedModel.from_info(model, info)), frozenset())
    mail = parse_mail(b"From: a@b.example\\nSubject: server down, call me\\n\\nplease call")
    [decision.in_full() for decision in decider.label([mail])]  # its reasons worded too
    heavy = sorted({m.split(".")[0] for m in sys.modules} & {"sklearn", "scipy", "skops"})
    print(",".join(heavy))
    """
)


def test_deciding_with_the_form_imports_no_scikit_learn_scipy_or_skops() -> None:
    done = subprocess.run(
        [sys.executable, "-c", RUN_PATH], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == ""
