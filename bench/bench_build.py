"""Build time of a 10-article edition: Jinja, MJML, inlining, total; and mjml-python vs node mjml.

Run: ``python -m bench.bench_build`` (or ``make bench`` for every benchmark). The node
comparison installs the official ``mjml`` npm package into a temporary folder; without
``npm`` it is skipped with a message.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from newsletter.config import Settings
from newsletter.content import editions, render
from newsletter.content.articles import ArticleIn, select, upsert
from newsletter.store.db import open_db

ARTICLES = 10
ROUNDS = 50
NODE_ROUNDS = 30
MJML_NPM_SPEC = os.environ.get("BENCH_MJML_NPM", "mjml")

NODE_SCRIPT = """
const fs = require("fs");
const mjml = require("mjml");
const source = fs.readFileSync(process.argv[2], "utf8");
const rounds = parseInt(process.argv[3], 10);
async function once() {
  // mjml 5 returns a Promise, mjml 4 the result itself: await covers both.
  const out = await mjml(source, { validationLevel: "soft", fonts: {} });
  return out.html.length;
}
(async () => {
  await once(); await once();
  const times = [];
  let size = 0;
  for (let i = 0; i < rounds; i++) {
    const start = process.hrtime.bigint();
    size = await once();
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  times.sort((a, b) => a - b);
  const version = require("mjml/package.json").version;
  console.log(JSON.stringify({ median_ms: times[Math.floor(times.length / 2)], size, version }));
})();
"""


def _median_ms(work: Callable[[], object], rounds: int = ROUNDS) -> float:
    work()  # warm caches (compiled templates, imports)
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def _sample_articles() -> list[ArticleIn]:
    base = datetime(2025, 8, 15, 9, 0, tzinfo=UTC)
    summary = (
        "Keski-Suomen hyvinvointialue liittyi virallisesti yhteisövaikuttavuustyöhön viime"
        " keväänä, mutta monet toimintatavat ovat alueella entuudestaan tuttuja."
    )
    return [
        ArticleIn(
            url=f"https://www.example.fi/ajankohtaista/artikkeli-{n}",
            title=f"Artikkeli {n}: yhteisövaikuttavuus ja hyvä arki kaikille",
            summary=summary,
            published=base - timedelta(hours=n),
            category="Uutiset" if n % 2 else "Blogi",
            topics=["Yhteisövaikuttavuus"],
            image=f"https://www.example.fi/media/{n}.jpg" if n % 3 else None,
            image_alt=f"Kuva {n}",
        )
        for n in range(ARTICLES)
    ]


def _settings(folder: Path) -> Settings:
    return Settings(
        db=folder / "bench.db",
        org_name="Esimerkkisäätiö",
        org_address="Esimerkkikatu 1, 00100 Helsinki",
        org_website="https://www.example.fi",
        org_email="info@example.fi",
    )


def _python_steps(settings: Settings) -> tuple[dict[str, float], str, int]:
    db = open_db(settings.db)
    with db.atomic():
        for item in _sample_articles():
            upsert(db, item)
    chosen = select(db, limit=ARTICLES)
    context = render.edition_context(
        settings,
        lang="fi",
        subject="Yhteisövaikuttavuus: uutiskirje",
        preheader="Artikkeli 0",
        intro="Hyvä lukija,\n\ntässä kuukauden uutiset.",
        articles=chosen,
        topic_names=["Yhteisövaikuttavuus"],
    )
    choice = render.choose_template(settings, None, render.DEFAULT_EDITION)
    source = render.render_template(choice, choice.html, context)
    compiled = render.compile_mjml(source, template=choice.html)
    html = render.fix_image_widths(render.inline_css(compiled))
    times = {
        "jinja (html + text)": _median_ms(
            lambda: (
                render.render_template(choice, choice.html, context),
                render.to_text(choice, context),
            )
        ),
        "mjml (mjml-python)": _median_ms(lambda: render.compile_mjml(source, template="bench")),
        "inlining (premailer)": _median_ms(
            lambda: render.fix_image_widths(render.inline_css(compiled))
        ),
        "total render": _median_ms(
            lambda: (render.to_html(choice, context), render.to_text(choice, context))
        ),
    }
    out = Path(settings.db).parent / "editions"
    count = 0

    def whole_build() -> None:
        nonlocal count
        count += 1
        editions.build(
            db, settings, topics=["yhteisovaikuttavuus"], since="2025-01-01", until=None,
            limit=None, subject=None, intro=None, lang="fi", template=None, out=out,
        )  # fmt: skip

    times["total build (select, render, store, write)"] = _median_ms(whole_build, rounds=20)
    db.close()
    return times, source, len(html.encode("utf-8"))


def _node_mjml(source: str) -> dict | None:
    npm = shutil.which("npm")
    node = shutil.which("node")
    if not npm or not node:
        print("node mjml: skipped (npm or node is not installed)")
        return None
    folder = Path(tempfile.mkdtemp(prefix="bench-mjml-"))
    try:
        print(f"node mjml: installing npm package {MJML_NPM_SPEC!r} into a temporary folder...")
        install = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent", MJML_NPM_SPEC],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if install.returncode != 0:
            print(f"node mjml: skipped (npm install failed: {install.stderr.strip()[-300:]})")
            return None
        (folder / "source.mjml").write_text(source, encoding="utf-8")
        (folder / "bench.js").write_text(NODE_SCRIPT, encoding="utf-8")
        run = subprocess.run(
            [node, "bench.js", "source.mjml", str(NODE_ROUNDS)],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if run.returncode != 0:
            print(f"node mjml: failed: {run.stderr.strip()[-300:]}")
            return None
        return json.loads(run.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        times, source, html_bytes = _python_steps(_settings(Path(tmp)))
    print(f"edition of {ARTICLES} articles, HTML {html_bytes / 1024:.1f} KB; median of runs:")
    for step, ms in times.items():
        print(f"  {step:44} {ms:8.2f} ms")
    node = _node_mjml(source)
    if node is None:
        return
    python_ms = times["mjml (mjml-python)"]
    ratio = node["median_ms"] / python_ms
    print(
        f"  {'mjml (node mjml ' + node['version'] + ', in-process)':44} {node['median_ms']:8.2f} ms"
    )
    verdict = "meets" if ratio >= 10 else "does NOT meet"
    print(f"mjml-python is {ratio:.1f}x faster than node mjml on the same MJML ({verdict} >= 10x)")


if __name__ == "__main__":
    main()
