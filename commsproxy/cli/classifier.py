"""``commsproxy train`` and ``commsproxy classify``: the models, from the user's own mail.

scikit-learn takes about a second to import, so the modules that need it are imported inside
the commands: ``commsproxy run`` and ``--help`` never pay for it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..classifier.dataset import ReadStats
from ..classifier.imap_source import ImapSourceError
from ..classifier.labels import LABELS, Label
from ..classifier.mail import Mail
from ..config import ConfigError, load_config
from ..credentials import CredentialError, run_password_command
from .common import config_option, main

if TYPE_CHECKING:
    from ..classifier.workflow import AccountsTraining, UrgencyTraining
    from ..models.store import ModelError

_DIR = click.Path(exists=True, file_okay=True, dir_okay=True, path_type=Path)


def _progress(quiet: bool, label: str) -> Any:
    """A counter on stderr while mail is read (click's bar needs a length we do not know)."""

    def wrap(mails: Iterable[Mail]) -> Iterator[Mail]:
        count = 0
        for count, mail in enumerate(mails, 1):
            if not quiet and count % 500 == 0:
                click.echo(f"\r{label}: {count:,} messages", nl=False, err=True)
            yield mail
        if not quiet and count >= 500:
            click.echo(f"\r{label}: {count:,} messages", err=True)

    return wrap


def _parse_label(value: str) -> tuple[Label, Path]:
    label, sep, path = value.partition("=")
    if not sep or label not in LABELS or not Path(path).exists():
        raise click.BadParameter(
            f"{value!r}: expected LABEL=PATH with LABEL one of {', '.join(LABELS)} and an "
            "existing PATH",
            param_hint="--label",
        )
    return label, Path(path)


@main.command()
@config_option
@click.option(
    "--task",
    type=click.Choice(["urgency", "accounts"]),
    default="urgency",
    show_default=True,
    help="Which model to train.",
)
@click.option(
    "--mailbox",
    "mailboxes",
    multiple=True,
    type=_DIR,
    help="urgency: one person's mail tree (Maildir, mbox or one file per message), "
    "sent folders included. Repeat for several people.",
)
@click.option(
    "--label",
    "labels",
    multiple=True,
    metavar="LABEL=PATH",
    help="urgency: a folder of examples whose label is given (urgent, normal, bulk); "
    "wins over the label derived from replies.",
)
@click.option(
    "--folders",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="accounts: a directory whose subdirectories are account folders.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to save the model, a .skops file [default: your data dir, used by `run`].",
)
@click.option(
    "--target",
    type=click.FloatRange(0.5, 1.0),
    default=None,
    help="urgency: share of urgent mail to deliver at once [0.95]; accounts: share "
    "of filings that must be right [0.98].",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("-q", "--quiet", is_flag=True, help="No progress, only the report.")
def train(
    config_path: Path | None,
    task: str,
    mailboxes: tuple[Path, ...],
    labels: tuple[str, ...],
    folders: Path | None,
    out: Path | None,
    target: float | None,
    seed: int,
    quiet: bool,
) -> None:
    """Train a model on your own mail and print how well it did.

    The urgency model learns from what you answered fast (urgent), what carries list and
    newsletter headers (bulk) and the rest (normal). Validation trains on older mail and
    tests on newer mail, as the model will be used.

    Without --mailbox or --folders it reads the configured login over IMAP (INBOX, archive
    folders, Sent; nothing is marked read) and trains both models: urgency, and accounts when
    account folders exist under [accounts] root (default Public/Accounts).

    \b
    Example:
        commsproxy train
        commsproxy train --task urgency --mailbox ~/Maildir --out urgency.skops
        commsproxy train --task accounts --folders ~/Mail/Accounts --out accounts.skops
    """
    from ..classifier.train import TrainingError
    from ..classifier.workflow import train_accounts_from_folders, train_urgency_from_mailboxes
    from ..models.store import ModelError, user_model_path

    destination = out or user_model_path(task)
    if not mailboxes and folders is None:
        _train_from_login(config_path, target, seed, quiet)
        return
    try:
        if task == "urgency":
            if not mailboxes:
                raise click.UsageError("--task urgency needs --mailbox DIR")
            result: UrgencyTraining | AccountsTraining = train_urgency_from_mailboxes(
                mailboxes,
                destination,
                label_paths=[_parse_label(value) for value in labels],
                recall_target=target or 0.95,
                seed=seed,
                progress=_progress(quiet, "reading"),
            )
        else:
            if folders is None:
                raise click.UsageError("--task accounts needs --folders DIR")
            result = train_accounts_from_folders(
                folders,
                destination,
                precision_target=target or 0.98,
                seed=seed,
                progress=_progress(quiet, "reading"),
            )
    except (TrainingError, ModelError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(_report(result))


def _corrections(state_dir: Path, login: str) -> dict[str, str]:
    """What the user taught triage by moving mail (rescues, demotions), if triage ever ran."""
    from ..triage.state_store import FILENAME, StateStore, StoreError

    if not (state_dir / FILENAME).exists():
        return {}
    try:
        with StateStore.open(state_dir) as store:
            return store.correction_labels(login)
    except StoreError as err:
        click.echo(f"warning: corrections not used: {err}", err=True)
        return {}


def _train_from_login(
    config_path: Path | None, target: float | None, seed: int, quiet: bool
) -> None:
    """The everyday path: the configured login's folders over IMAP, both models."""
    from ..classifier.train import TrainingError
    from ..classifier.workflow import train_from_imap
    from ..models.store import ModelError

    try:
        config = load_config(config_path, required=config_path is not None)
    except ConfigError as err:
        raise click.UsageError(str(err)) from None
    if not config.logins:
        raise click.UsageError(
            "no [[login]] in the config to read mail from: run `commsproxy init`, or train "
            "from files with --mailbox DIR / --task accounts --folders DIR"
        )
    login = config.logins[0]
    if not login.username:
        raise click.UsageError(f"{config.path}: [[login]] username: needed to read your mail")
    accounts_root = config.accounts.root or "Public/Accounts"
    try:
        password = (
            run_password_command(login.password_command)
            if login.password_command
            else click.prompt(f"password for {login.username}", hide_input=True, err=True)
        )
        urgency, accounts = train_from_imap(
            login,
            password,
            corrections=_corrections(config.proxy.state_dir, login.username),
            accounts_root=accounts_root,
            recall_target=target or 0.95,
            seed=seed,
            progress=_progress(quiet, "reading"),
        )
    except (CredentialError, ImapSourceError, TrainingError, ModelError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(_report(urgency))
    if accounts is not None:
        click.echo(_report(accounts))
    else:
        click.echo(f"no account folders under {accounts_root}: accounts model not trained")


def _report(result: UrgencyTraining | AccountsTraining) -> str:
    from ..classifier.workflow import UrgencyTraining
    from ..models.store import describe

    lines = [f"saved {result.info.path}", describe(result.info)]
    read = result.read
    lines.append(f"read {read.read:,} messages ({read.skipped:,} skipped)")
    if isinstance(result, UrgencyTraining):
        report = result.report
        lines.append(result.labels.summary())
        lines.append(f"validation ({report.validation}) on {report.validated_on:,} messages:")
        for label, m in report.per_class.items():
            lines.append(
                f"  {label:<7} precision {m.precision:6.1%}  recall {m.recall:6.1%}  "
                f"({m.support:,} messages)"
            )
        lines.append(report.summary())
        lines.append(
            f"with nothing known of your past (a new sender's view): {report.cold.words()}"
        )
        lines += [f"note: {note}" for note in report.notes]
    else:
        lines.append(
            f"{len(result.report.counts)} accounts; validation on the newest "
            f"{result.report.validated_on:,} messages: {result.report.summary()}"
        )
    lines.append(f"training took {result.report.seconds:.1f} s")
    return "\n".join(lines)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=_DIR)
@click.option("--model", help="Urgency model file (.skops) [default: yours, else the bundled one].")
@click.option("--accounts-model", help="Accounts model file (.skops) [default: yours, if trained].")
@click.option(
    "--history",
    type=click.Path(exists=True, path_type=Path),
    help="Your own mail tree (with sent folders): who you reply to, and how fast, "
    "counted only from mail dated before each message.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per message.")
@click.option("--explain", is_flag=True, help="Say why, in words.")
def classify(
    paths: tuple[Path, ...],
    model: str | None,
    accounts_model: str | None,
    history: Path | None,
    as_json: bool,
    explain: bool,
) -> None:
    """Classify message files (or every message under a directory).

    \b
    Example:
        commsproxy classify --explain ~/Maildir/new
        commsproxy classify --json --history ~/Maildir message.eml
    """
    from ..classifier.workflow import classify_paths
    from ..models.store import ModelError

    stats = ReadStats()
    try:
        results = classify_paths(
            paths,
            model=model,
            accounts_model=accounts_model,
            history=history,
            explain=explain,
            stats=stats,
        )
    except ModelError as err:
        raise click.ClickException(_flagged(err, model, accounts_model)) from None
    for mail, verdict in results:
        if as_json:
            record = {
                "path": mail.path,
                "label": verdict.label,
                "p_urgent": verdict.p_urgent,
                "urgent_from": verdict.threshold,
                "account": verdict.account,
                "account_score": verdict.account_score,
                "reasons": verdict.reasons,
            }
            click.echo(json.dumps(record, ensure_ascii=False))
            continue
        line = f"{verdict.label or '-':<7} {verdict.score_words():<22}  {mail.path}"
        if verdict.account:
            line += f"  [{verdict.account}]"
        click.echo(line)
        for reason in verdict.reasons or ():
            click.echo(f"        - {reason}")
    if stats.skipped:
        click.echo(f"{stats.skipped} messages could not be read: {stats.reasons}", err=True)
    sys.stdout.flush()


def _flagged(err: ModelError, model: str | None, accounts_model: str | None) -> str:
    """The error, led by the flag that named the model, when one did."""
    flag = {"urgency": ("--model", model), "accounts": ("--accounts-model", accounts_model)}
    name, value = flag.get(str(err.task), ("", None))
    return f"{name}: {err}" if value else str(err)


# --- models migrate ------------------------------------------------------------------------------

_CONSENT = (
    "Loading a .joblib file can run code; only continue if this file was written by commsproxy "
    "on this machine. Convert {path}?"
)


@main.group()
def models() -> None:
    """Your trained models.

    \b
    Example:
        commsproxy models migrate
    """


@models.command()
@click.argument("paths", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Convert without asking (each file is still checked).")
def migrate(paths: tuple[Path, ...], yes: bool) -> None:
    """Convert .joblib models from an older commsproxy to .skops, once.

    A .joblib file is a pickle, and loading one can run code, so commsproxy no longer loads
    them. This command loads each given one (default: the models `commsproxy train` wrote
    in your data dir) after checking it against its sidecar, and only after you confirm that
    it is yours; then it saves the model as NAME.skops, which cannot run code, and keeps the
    old files as NAME.old.joblib and NAME.old.json. If you are not sure a file is yours,
    answer no and train a new model with `commsproxy train`.

    \b
    Example:
        commsproxy models migrate
        commsproxy models migrate ~/models/mine.joblib --yes
    """
    from ..models import migrate as migration
    from ..models.store import ModelError, describe

    targets = list(paths) or migration.legacy_user_models()
    if not targets:
        click.echo("no .joblib model without a .skops one in your data dir: nothing to convert")
        return
    declined: list[Path] = []
    for path in targets:
        try:
            step = migration.plan(path)
        except ModelError as err:
            raise click.ClickException(str(err)) from None
        click.echo(f"{step.old}: {describe(step.info)}")
        if not yes and not click.confirm(_CONSENT.format(path=step.old), default=False):
            click.echo(f"not converted: {step.old} (left as it was)")
            declined.append(step.old)
            continue
        try:
            info = migration.convert(step)
        except ModelError as err:
            raise click.ClickException(str(err)) from None
        click.echo(f"saved {info.path}; the old files are kept: {step.kept}, {step.kept_sidecar}")
        if paths:
            click.echo(f"where your config names {step.old}, name {info.path} instead")
    if declined:
        names = ", ".join(str(p) for p in declined)
        raise click.ClickException(
            f"not converted: {names}; commsproxy does not load .joblib models: train new ones "
            f"with `commsproxy train`, or run this again and answer yes if they are yours"
        )
