"""From mailboxes to saved models, and from message files to verdicts: what the CLI calls.

Each function reads mail (dataset.py), derives labels (labels.py) and social history
(social.py), builds samples in date order, and trains (train.py) or classifies (predict.py).
Reading can take minutes on a big mailbox, so callers may pass ``progress``, a wrapper around
the stream of messages (the CLI's progress bar).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..config import LoginConfig
from ..models.store import (
    ModelError,
    ModelInfo,
    ModelNotFoundError,
    load_bundled,
    resolve_model,
    save_model,
    user_model_path,
)
from .contacts import Contacts, contacts_path
from .dataset import ReadStats, iter_labelled_folders, iter_mailbox
from .features import Context, Sample
from .imap_source import read_imap
from .labels import LABELS, Label, LabelResult, Override, derive_labels, normalise_id
from .mail import Mail
from .policy import Thresholds
from .predict import Classifier, LoadedModel, Verdict
from .scoring_convert import scoring_bytes
from .social import SocialHistory
from .train import AccountsReport, Prior, UrgencyReport, cold, train_accounts, train_urgency

__all__ = [
    "NO_HISTORY",
    "AccountsTraining",
    "PersonHistory",
    "UrgencyTraining",
    "classify_paths",
    "labelled_samples",
    "train_accounts_from_folders",
    "train_from_imap",
    "train_urgency_from_mail",
    "train_urgency_from_mailboxes",
]

Progress = Callable[[Iterable[Mail]], Iterable[Mail]]


def _same(mails: Iterable[Mail]) -> Iterable[Mail]:
    return mails


@dataclass
class UrgencyTraining:
    info: ModelInfo
    report: UrgencyReport
    labels: LabelResult
    read: ReadStats


@dataclass
class AccountsTraining:
    info: ModelInfo
    report: AccountsReport
    read: ReadStats


@dataclass(frozen=True)
class PersonHistory:
    """A person's past as features see it: who they are, how they replied, what they sent."""

    social: SocialHistory
    user_addresses: frozenset[str]
    sent_ids: frozenset[str]

    @classmethod
    def from_labels(
        cls, result: LabelResult, mails: Iterable[Mail], is_sent: Callable[[Mail], bool]
    ) -> PersonHistory:
        sent = frozenset(normalise_id(m.message_id) for m in mails if is_sent(m) and m.message_id)
        return cls(SocialHistory.from_result(result), result.user_addresses, sent)

    def samples(self, mails: Iterable[Mail]) -> list[Sample]:
        """Samples whose social context is the history strictly before each message's date.

        Without any history (``NO_HISTORY``) the samples are cold: nothing known of the past.
        """
        if self is NO_HISTORY:
            return [cold(Sample(mail)) for mail in mails]
        samples = []
        for mail in mails:
            sender = domain = None
            if mail.date is not None and mail.sender:
                sender = self.social.stats(mail.sender, mail.date)
                domain = self.social.stats_domain(mail.sender, mail.date)
            thread = (*mail.in_reply_to, *mail.references)
            context = Context(
                user_addresses=self.user_addresses,
                sender=sender,
                domain=domain,
                replies_to_user=any(normalise_id(i) in self.sent_ids for i in thread),
            )
            samples.append(Sample(mail, context))
        return samples


NO_HISTORY = PersonHistory(SocialHistory([], []), frozenset(), frozenset())


def labelled_samples(
    mails: Sequence[Mail],
    is_sent: Callable[[Mail], bool],
    *,
    overrides: Mapping[str, Override] | None = None,
) -> tuple[LabelResult, list[Sample], list[str]]:
    """A person's received mail labelled from their replies, as dated samples in date order."""
    result = derive_labels(mails, is_sent=is_sent, overrides=overrides)
    history = PersonHistory.from_labels(result, mails, is_sent)
    dated = [entry for entry in result.labelled if entry.mail.date is not None]
    samples = [
        replace(sample, rebuilt=True) if entry.rebuilt else sample
        for sample, entry in zip(history.samples(e.mail for e in dated), dated, strict=True)
    ]
    return result, samples, [entry.label for entry in dated]


def train_urgency_from_mail(
    mails: Sequence[Mail],
    is_sent: Callable[[Mail], bool],
    out: Path,
    *,
    overrides: dict[str, Override] | None = None,
    recall_target: float = 0.95,
    seed: int = 0,
    read: ReadStats | None = None,
    sources: Sequence[str] = (),
    login: str | None = None,
) -> UrgencyTraining:
    """Label ``mails`` from the user's replies, train, validate, save to ``out``.

    Beside the model goes the user's history with each sender as of the newest mail
    (contacts.py), which gives live triage the social features the model was trained with.
    """
    result, samples, labels = labelled_samples(mails, is_sent, overrides=overrides)
    pipeline, report = train_urgency(
        samples, labels, recall_target=recall_target, seed=seed, prior=bundled_prior()
    )
    scoring = scoring_bytes(pipeline, "urgency", samples)
    info = save_model(
        pipeline,
        out,
        task="urgency",
        labels=[label for label in LABELS if label in report.counts],
        training={
            "counts": report.counts,
            "sources": list(sources),
            "messages_read": read.read if read else len(mails),
            "messages_skipped": read.skipped if read else 0,
            "user_addresses": sorted(result.user_addresses),
            "labels": result.summary(),
        },
        metrics=urgency_metrics(report),
        threshold=report.threshold,
        thresholds=report.thresholds.as_dict(),
        scoring=scoring,
    )
    person = PersonHistory.from_labels(result, mails, is_sent)
    Contacts.from_history(person.social, person.user_addresses, person.sent_ids, login=login).save(
        contacts_path(info.path)
    )
    return UrgencyTraining(info, report, result, read or ReadStats(read=len(mails)))


def bundled_prior() -> Prior | None:
    """The bundled model as the prior a user's training must not fall below."""
    try:
        pipeline, info = load_bundled("urgency")
    except ModelError:
        return None  # a package built without it: the user's own mail alone
    return Prior(pipeline, Thresholds.from_mapping(info.thresholds, info.threshold))


def urgency_metrics(report: UrgencyReport) -> dict[str, Any]:
    """The validation figures a model's sidecar keeps."""
    return {
        "validated_on": report.validated_on,
        "urgent_validated": report.urgent_validated,
        "urgent_delivered": report.warm.delivered,
        "other_held": report.warm.held,
        "cold_urgent_delivered": report.cold.delivered,
        "cold_other_held": report.cold.held,
        "bundled": None if report.prior is None else vars(report.prior),
        "choice": report.choice,
        "notes": report.notes,
        "per_class": {
            label: {"precision": m.precision, "recall": m.recall, "support": m.support}
            for label, m in report.per_class.items()
        },
        "seconds": report.seconds,
    }


def _read_all(roots: Iterable[Path], stats: ReadStats, progress: Progress) -> list[Mail]:
    def stream() -> Iterator[Mail]:
        for root in roots:
            yield from iter_mailbox(root, stats=stats)

    return list(progress(stream()))


def train_urgency_from_mailboxes(
    mailboxes: Sequence[Path],
    out: Path,
    *,
    label_paths: Sequence[tuple[Label, Path]] = (),
    recall_target: float = 0.95,
    seed: int = 0,
    progress: Progress = _same,
) -> UrgencyTraining:
    """Each of ``mailboxes`` is one person's mail tree with its sent folders.

    ``label_paths`` are explicit training folders (``("urgent", Path(...))``): their messages
    are added and their label wins over the derived one.
    """
    stats = ReadStats()
    mails = _read_all(mailboxes, stats, progress)
    overrides: dict[str, Override] = {}
    for label, path in label_paths:
        extra = _read_all([path], stats, progress)
        for mail in extra:
            if mail.message_id:
                overrides[mail.message_id] = Override(label, f"training folder {path}")
        mails += extra

    def is_sent(mail: Mail) -> bool:
        return stats.is_sent(mail.folder)

    sources = [str(p) for p in mailboxes] + [f"{label}={p}" for label, p in label_paths]
    return train_urgency_from_mail(
        mails,
        is_sent,
        out,
        overrides=overrides,
        recall_target=recall_target,
        seed=seed,
        read=stats,
        sources=sources,
    )


def train_accounts_from_folders(
    root: Path,
    out: Path,
    *,
    precision_target: float = 0.98,
    seed: int = 0,
    progress: Progress = _same,
) -> AccountsTraining:
    """Each immediate subdirectory of ``root`` is one account; its messages are examples."""
    stats = ReadStats()
    pairs = list(iter_labelled_folders(root, stats=stats))
    kept = {id(mail) for mail in progress(mail for _, mail in pairs)}
    pairs = [(label, mail) for label, mail in pairs if id(mail) in kept]
    return _train_accounts_pairs(pairs, out, precision_target, seed, stats, [str(root)])


def _train_accounts_pairs(
    pairs: Sequence[tuple[str, Mail]],
    out: Path,
    precision_target: float,
    seed: int,
    stats: ReadStats,
    sources: Sequence[str],
) -> AccountsTraining:
    dated = sorted(
        ((label, mail) for label, mail in pairs if mail.date is not None),
        key=lambda pair: pair[1].date or datetime.min.replace(tzinfo=UTC),
    )
    samples = [Sample(mail) for _, mail in dated]
    labels = [label for label, _ in dated]
    pipeline, report = train_accounts(samples, labels, precision_target=precision_target, seed=seed)
    scoring = scoring_bytes(pipeline, "accounts", samples)
    info = save_model(
        pipeline,
        out,
        task="accounts",
        labels=sorted(report.counts),
        training={
            "counts": report.counts,
            "sources": list(sources),
            "messages_read": stats.read,
            "messages_skipped": stats.skipped,
            "undated_left_out": len(pairs) - len(dated),
        },
        metrics={
            "validated_on": report.validated_on,
            "precision": report.precision,
            "coverage": report.coverage,
            "accuracy": report.accuracy,
            "seconds": report.seconds,
        },
        threshold=report.threshold,
        scoring=scoring,
    )
    return AccountsTraining(info, report, stats)


def _load(spec: str | Path | None, task: str, *, required: bool) -> LoadedModel | None:
    try:
        pipeline, info = resolve_model(spec, task)
    except ModelNotFoundError as err:
        if required:
            err.task = task  # which option named it, for the CLI
            raise
        return None
    except ModelError as err:
        err.task = task
        raise
    return LoadedModel.from_info(pipeline, info)


def classify_paths(
    paths: Sequence[Path],
    *,
    model: str | Path | None = None,
    accounts_model: str | Path | None = None,
    history: Path | None = None,
    explain: bool = False,
    stats: ReadStats | None = None,
) -> list[tuple[Mail, Verdict]]:
    """Classify every message under ``paths``; social features from ``history`` if given."""
    stats = stats if stats is not None else ReadStats()
    # Urgency is what classify is for, unless only an accounts model was asked for.
    urgency = _load(model, "urgency", required=accounts_model is None or model is not None)
    accounts = _load(accounts_model, "accounts", required=accounts_model is not None)
    mails = [mail for path in paths for mail in iter_mailbox(path, stats=stats)]
    person = NO_HISTORY
    if history is not None:
        history_stats = ReadStats()
        past = list(iter_mailbox(history, stats=history_stats))

        def is_sent(mail: Mail) -> bool:
            return history_stats.is_sent(mail.folder)

        person = PersonHistory.from_labels(derive_labels(past, is_sent=is_sent), past, is_sent)
    samples = person.samples(mails)
    verdicts = Classifier(urgency, accounts).classify(samples, explain=explain)
    return list(zip(mails, verdicts, strict=True))


def train_from_imap(
    login: LoginConfig,
    password: str,
    *,
    accounts_root: str = "Public/Accounts",
    urgency_out: Path | None = None,
    accounts_out: Path | None = None,
    recall_target: float = 0.95,
    precision_target: float = 0.98,
    seed: int = 0,
    progress: Progress = _same,
    corrections: Mapping[str, str] | None = None,
) -> tuple[UrgencyTraining, AccountsTraining | None]:
    """The everyday path: the login's own folders over IMAP (read-only, nothing marked seen).

    The urgency model learns from INBOX, archives and Sent; when folders below
    ``accounts_root`` exist (one per customer), the accounts model learns from them too.
    ``corrections`` (Message-ID -> label, from the triage state) win over derived labels.
    """
    endpoint = login.upstream_imap
    stats = ReadStats()

    def read(folders: Sequence[str] | None) -> list[Mail]:
        source = read_imap(
            endpoint.host, endpoint.port, endpoint.security, login.username or "", password,
            cafile=login.cafile, folders=folders, stats=stats,
        )  # fmt: skip
        return list(progress(source))

    own = read(None)  # the login's own folders; shared namespaces are read on purpose only

    def is_sent(mail: Mail) -> bool:
        return stats.is_sent(mail.folder)

    overrides = {
        f"<{mid}>": Override(label, "your correction")
        for mid, label in (corrections or {}).items()
        if label in LABELS
    }
    urgency = train_urgency_from_mail(
        own,
        is_sent,
        urgency_out or user_model_path("urgency"),
        overrides=overrides,
        recall_target=recall_target,
        seed=seed,
        read=stats,
        sources=[f"{endpoint.url} ({login.username})"],
        login=login.username,
    )
    prefix = accounts_root.rstrip("/") + "/"
    pairs = [(m.folder[len(prefix) :].split("/", 1)[0], m) for m in read([prefix + "*"])]
    if len({label for label, _ in pairs}) < 2:
        return urgency, None
    accounts = _train_accounts_pairs(
        pairs, accounts_out or user_model_path("accounts"), precision_target, seed, stats,
        [f"{endpoint.url} {accounts_root}"],
    )  # fmt: skip
    return urgency, accounts
