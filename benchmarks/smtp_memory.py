"""SMTP memory benchmark: a real ``commsproxy run`` while big messages go through it at once.

One private Dovecot (tests/testbed) with its submission service as the upstream; a commsproxy
process of this tree and, side by side, one of a baseline commit (``--baseline``, unpacked with
``git archive`` into a temporary directory), both ``run --no-triage``. For each, in turn: VmRSS
before, N messages of M MB sent at once with smtplib (one thread each, all authenticated first,
DATA started together), VmRSS sampled every 20 ms while they are in flight (its peak), and
after every reply is in and a moment of quiet: VmRSS after, and what stays above before.

    python benchmarks/smtp_memory.py [--messages 5] [--size-mb 30] [--baseline COMMIT]

Printed: one table row per build (before, peak, after, growth at peak and after, replies, and
the seconds it took); the growth ratios new/baseline.
"""

from __future__ import annotations

import argparse
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.testbed.dovecot import Dovecot  # noqa: E402
from tests.testbed.proxy import ProxyProcess, proxy_args  # noqa: E402
from tests.testbed.triage import quiet_batches  # noqa: E402


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def message(size: int, index: int, user: str) -> bytes:
    line = b"z" * 76 + b"\r\n"
    head = (
        f"From: {user}@team.example\r\nTo: ceo@acme.example\r\nSubject: big {index}\r\n"
        f"Message-ID: <big-{index}-{time.time()}@bench>\r\n\r\n"
    )
    return head.encode() + line * (size // len(line))


def triage_config(dovecot: Dovecot, user: tuple[str, str], directory: Path) -> Path:
    """A login with triage and a customer account the big messages go to (so each is filed)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "config.toml"
    config.write_text(
        f"""
[proxy]
imap = "127.0.0.1:0"
smtp = "127.0.0.1:0"
state_dir = "{directory / "state"}"

[[login]]
username = "{user[0]}"
password_command = "printf %s {user[1]}"
upstream_imap = "imap://127.0.0.1:{dovecot.imap_port}"
upstream_smtp = "smtp+starttls://localhost:{dovecot.submission_port}"
cafile = "{dovecot.ca_file}"

{quiet_batches()}
[accounts]
internal_domains = ["team.example"]
[accounts.acme]
name = "Acme"
domains = ["acme.example"]
""",
        encoding="utf-8",
    )
    return config


def measure(proxy: ProxyProcess, user: tuple[str, str], count: int, size: int) -> dict[str, float]:
    pid = proxy.pid
    time.sleep(1.0)
    before = rss_kib(pid)
    bodies = [message(size, i, user[0]) for i in range(count)]
    ready = threading.Barrier(count + 1)
    replies: list[int] = []

    def send(body: bytes) -> None:
        with smtplib.SMTP("127.0.0.1", proxy.smtp_port, timeout=300) as smtp:
            smtp.login(*user)
            ready.wait()
            try:
                smtp.sendmail(f"{user[0]}@localhost", ["ceo@acme.example"], body)
                replies.append(250)
            except smtplib.SMTPResponseException as err:
                replies.append(err.smtp_code)

    threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    ready.wait()
    start = time.monotonic()
    peak = before
    while any(thread.is_alive() for thread in threads):
        peak = max(peak, rss_kib(pid))
        time.sleep(0.02)
    took = time.monotonic() - start
    # With triage, each message is also filed into the account folder: wait for that too.
    deadline = time.monotonic() + 120
    while proxy.log_text().count(" appended ") < count and "filing" in proxy.log_text():
        peak = max(peak, rss_kib(pid))
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    time.sleep(2.0)
    after = rss_kib(pid)
    return {
        "before": before / 1024,
        "peak": peak / 1024,
        "after": after / 1024,
        "took": took,
        "accepted": sum(1 for code in replies if code == 250),
    }


def baseline_tree(commit: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "commsproxy"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5)
    parser.add_argument("--size-mb", type=int, default=30)
    parser.add_argument("--baseline", default=None, help="a commit to compare with")
    parser.add_argument("--triage", action="store_true", help="with triage, filing each message")
    args = parser.parse_args()
    size = args.size_mb << 20
    rows: dict[str, dict[str, float]] = {}
    with Dovecot() as dovecot, tempfile.TemporaryDirectory() as tmp:
        user = dovecot.new_user()
        builds: list[tuple[str, Path | None]] = [("this tree", None)]
        if args.baseline:
            builds.append(
                (f"baseline {args.baseline[:10]}", baseline_tree(args.baseline, Path(tmp)))
            )
        for name, tree in builds:
            if args.triage:
                config = triage_config(dovecot, user, Path(tmp) / name.replace(" ", "-"))
                proxy = ProxyProcess(["--config", str(config)])
            else:
                proxy = ProxyProcess(proxy_args(dovecot))
            if tree is not None:  # the baseline's package first on the path, not this tree's
                code = (
                    "import sys; sys.path.insert(0, sys.argv.pop(1)); "
                    "from commsproxy.cli import main; main(prog_name='commsproxy')"
                )
                proxy.args = [sys.executable, "-c", code, str(tree), *proxy.args[3:]]
            proxy.start()
            if args.triage and not proxy.wait_for_log(r"watching INBOX", 30):
                raise SystemExit("triage did not start:\n" + proxy.log_text())
            try:
                rows[name] = measure(proxy, user, args.messages, size)
            finally:
                proxy.stop()
    print(f"{args.messages} messages of {args.size_mb} MiB at once, VmRSS in MiB")
    print(f"{'build':24} {'before':>8} {'peak':>8} {'after':>8} {'+peak':>8} {'+after':>8} "
          f"{'250s':>5} {'secs':>6}")  # fmt: skip
    for name, row in rows.items():
        print(
            f"{name:24} {row['before']:8.1f} {row['peak']:8.1f} {row['after']:8.1f} "
            f"{row['peak'] - row['before']:8.1f} {row['after'] - row['before']:8.1f} "
            f"{row['accepted']:5.0f} {row['took']:6.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
