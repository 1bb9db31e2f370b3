"""`/info`, the Swagger UI page and its files, and the Grafana dashboard against a scrape."""

from __future__ import annotations

import json
import re
from importlib import metadata
from pathlib import Path
from urllib.parse import urljoin

from prometheus_client.parser import text_string_to_metric_families

from orch8.adapters.prometheus import PrometheusMetrics
from orch8.application.use_cases.service_info import MetricsService
from orch8.bootstrap.process import FEATURES, build
from orch8.bootstrap.settings import Settings
from orch8.entrypoints.http import meta, openapi

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
EXTERNAL = re.compile(r"(?:https?:)?//[a-z0-9.-]+", re.I)


async def test_info_follows_orch8_and_names_storage_and_features(api):
    reply = await api.call("GET", "/info")
    assert reply.status == 200
    assert reply.body == {
        "version": metadata.version("orch8"),
        "env_label": None,
        "env_color": None,
        "storage": "sqlite",
        "features": [*FEATURES, "metrics"],
    }
    assert {"rest", "sse", "workers", "cron", "rate_limits", "metrics"} <= set(
        reply.body["features"]
    )
    assert "Deprecation" not in reply.headers
    await api.expect_error(404, "GET", "/api/v1/info")


def test_info_names_the_storage_kind_never_its_url() -> None:
    url = "postgresql://orch8:s3cret@db.internal:5432/orch8"
    settings = Settings(database_url=url, env_label="staging", env_color="#ffaa00")
    info = build(settings).use_cases.info
    assert (info.storage, info.env_label, info.env_color) == ("postgres", "staging", "#ffaa00")
    assert "s3cret" not in repr(info) and "db.internal" not in repr(info)
    assert build(Settings(database_url="memory://")).use_cases.info.storage == "memory"


async def test_metrics_and_swagger_are_root_only(api):
    await api.expect_error(404, "GET", "/api/v1/metrics")
    await api.expect_error(404, "GET", "/api/v1/swagger-ui")
    async with api.client.get("/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert "Deprecation" not in resp.headers
        assert "# TYPE orch8_steps_executed_total counter" in await resp.text()


class DownTasks:
    async def stats(self, tenant_id: str | None) -> object:
        raise ConnectionError("database unreachable")


async def test_metrics_are_served_while_storage_is_down(make_api):
    metrics = PrometheusMetrics()
    metrics.scheduler_ticked(2, 0.001)
    api = await make_api(metrics=MetricsService(metrics, DownTasks()))  # type: ignore[arg-type]
    async with api.client.get("/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    assert "orch8_instances_claimed_total 2.0" in text
    assert 'orch8_worker_tasks{state="pending"} 0.0' in text


async def test_swagger_ui_is_served_offline(api):
    async with api.client.get("/swagger-ui") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        page = await resp.text()
    assert EXTERNAL.search(page) is None, EXTERNAL.search(page)
    assert "validatorUrl: null" in page  # the UI would otherwise post the document outside
    assert meta.SPEC_PATH == openapi.DOC_PATH
    spec = re.search(r'url: "([^"]+)"', page)
    assert spec is not None and urljoin("/swagger-ui", spec.group(1)) == openapi.DOC_PATH
    refs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert len(refs) >= 3
    kinds = {}
    for ref in refs:
        path = urljoin("/swagger-ui", ref)
        assert path.startswith("/swagger-ui/"), ref
        async with api.client.get(path) as resp:
            assert resp.status == 200, path
            kinds[path.rsplit(".", 1)[1]] = resp.content_type
            body = await resp.read()
        assert body
        if path.endswith(".css"):
            css = body.decode()
            assert re.search(r"url\(\s*(?!['\"]?data:)", css) is None  # images inline only
            assert "@import" not in css
        if path.endswith(".js"):
            assert b"SwaggerUIBundle" in body
    assert kinds == {"css": "text/css", "png": "image/png", "js": "text/javascript"}
    await api.expect_error(404, "GET", "/swagger-ui/index.html")
    await api.expect_error(404, "GET", "/swagger-ui/..%2Fpyproject.toml")


def _queried(dashboard: dict[str, object]) -> set[str]:
    exprs = [
        target["expr"]
        for panel in dashboard["panels"]  # type: ignore[attr-defined]
        for target in panel.get("targets", [])
    ]
    names = set()
    for expr in exprs:
        for name in re.findall(r"\b(orch8_[a-z0-9_]+)", expr):
            names.add(re.sub(r"_(bucket|sum|count)$", "", name))
    return names


async def test_the_grafana_dashboard_queries_what_a_scrape_has(api):
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    async with api.client.get("/metrics") as resp:
        text = await resp.text()
    families = {
        f.name: f.type for f in text_string_to_metric_families(text) if f.name.startswith("orch8_")
    }
    # the exposition's names: counters carry `_total`
    exposed = {name + ("_total" if kind == "counter" else "") for name, kind in families.items()}
    queried = _queried(dashboard)
    assert queried <= exposed, queried - exposed
    assert exposed <= queried, f"no panel for {exposed - queried}"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
