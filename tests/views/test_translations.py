"""The Simplified Chinese catalog is complete: every translatable string of the code and templates has its
translation (none empty, none fuzzy), the compiled catalog is the one the .po says, and the pages served in
zh-hans show no English text the catalog knows."""

from __future__ import annotations

import gettext
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.views.helpers import url

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "batches" / "locale" / "zh_Hans" / "LC_MESSAGES"
ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-Hans"}
needs_gettext = pytest.mark.skipif(
    not shutil.which("msgattrib") and not os.environ.get("CI"), reason="GNU gettext is not installed (CI installs it)"
)


@needs_gettext
def test_every_translatable_string_has_its_chinese_translation(tmp_path: Path) -> None:
    for folder in ("batches", "templates"):  # a copy: makemessages rewrites the catalog it checks
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))

    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "messages.py"), "--root", str(tmp_path), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, f"run `python scripts/messages.py` and translate:\n{done.stderr[-6000:]}"


@needs_gettext
def test_the_compiled_catalog_is_the_one_the_po_file_says(tmp_path: Path) -> None:
    compiled = tmp_path / "django.mo"
    subprocess.run(["msgfmt", "-o", str(compiled), str(CATALOG / "django.po")], check=True, timeout=60)

    with open(compiled, "rb") as fresh, open(CATALOG / "django.mo", "rb") as shipped:
        assert gettext.GNUTranslations(shipped)._catalog == gettext.GNUTranslations(fresh)._catalog  # type: ignore[attr-defined]


class Text(HTMLParser):
    """The text a reader sees: text nodes, button values, placeholders and titles; not scripts or styles."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.hidden += tag in ("script", "style")
        for name, value in attrs:
            if name in ("placeholder", "title", "aria-label") or (name == "value" and tag == "button"):
                self.seen.add((value or "").strip())

    def handle_endtag(self, tag: str) -> None:
        self.hidden -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if not self.hidden and data.strip():
            self.seen.add(" ".join(data.split()))


def english_the_catalog_translates() -> set[str]:
    with open(CATALOG / "django.mo", "rb") as shipped:
        catalog: dict[Any, str] = gettext.GNUTranslations(shipped)._catalog  # type: ignore[attr-defined]
    return {key for key, text in catalog.items() if isinstance(key, str) and key and key != text and "%" not in key}


@pytest.mark.parametrize(
    "page",
    [
        lambda b, e: url("batch_list"),
        lambda b, e: url("batch_detail", b.pk),
        lambda b, e: url("batch_failures", b.pk),
        lambda b, e: url("batch_results", b.pk),
        lambda b, e: url("batch_compare", b.pk, b.pk),
        lambda b, e: url("batch_rerun", b.pk),
        lambda b, e: url("execution_detail", e.pk),
        lambda b, e: url("batch_new"),
        lambda b, e: url("workflow_list"),
        lambda b, e: url("workflow_edit", b.workflow_id),
        lambda b, e: url("workflow_add"),
    ],
)
def test_a_page_served_in_chinese_shows_no_english_the_catalog_knows(admin_client, target, page) -> None:
    target[0].name = "样例批次"  # names are data, not text to translate ("batch" is also a msgid)
    target[0].save(update_fields=["name"])
    response = admin_client.get(page(*target), **ZH)
    assert response.status_code == 200
    text = Text()
    text.feed(response.content.decode())

    assert sorted(text.seen & english_the_catalog_translates()) == []


def test_json_messages_are_served_in_chinese(admin_client, target) -> None:
    batch, _ = target
    data = admin_client.get(url("batch_progress_json", batch.pk), **ZH).json()
    refused = admin_client.get(url("batch_results_json", 999999), **ZH).json()

    assert data["status_display"] in ("运行中", "已完成", "待处理", "已暂停", "已取消")
    assert refused["error"] == "未找到。"
