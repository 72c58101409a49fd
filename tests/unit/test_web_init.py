"""The config ``commsproxy init`` writes mentions the local page, and its example loads."""

from __future__ import annotations

from pathlib import Path

from commsproxy.config import DEFAULT_WEB_PORT, load_config
from commsproxy.init import write_initial_config


def test_init_config_explains_web_and_its_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    write_initial_config(path)
    text = path.read_text(encoding="utf-8")
    assert "# [web]\n# port = 1180\n" in text
    assert "commsproxy open" in text
    assert load_config(path, required=True).web.port == DEFAULT_WEB_PORT
    uncommented = text.replace(
        "# [web]\n# port = 1180\n# enabled = true", "[web]\nport = 1181\nenabled = false"
    )
    path.write_text(uncommented, encoding="utf-8")
    web = load_config(path, required=True).web
    assert (web.port, web.enabled) == (1181, False)
