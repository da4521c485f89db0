"""``flowsim nlu SCENARIO``: NLU regression without conversations (API reference §12). The scenario's ``[nlu]``
table maps its utterance sets to the intent each must be understood as; every utterance goes to the bot flow's
NLU domain version (``POST .../detect``, the domain and version read from the flow's latest configuration) at a
bounded rate; the answer is a confusion matrix, precision / recall / F1 per intent and macro, a confidence
histogram, the close calls, and thresholds for a CI exit code; the platform's own quality report for that domain
version is printed beside (when readable). ``--json`` keeps every detection: ``flowsim compare`` of two such files
lists the utterances that changed intent::

    [nlu]
    sets = { order_status = "CheckOrderStatus", agent = "TalkToAgent" }   # [utterances] set → intent
    rate = 5                # detect calls a second (within the token's limit)
    min_confidence = 0.5    # the top intent below this: detected as (none)
    close_margin = 0.1      # top two intents this close: listed as a close call
    min_macro_f1 = 0.9      # thresholds (optional)
    min_recall = 0.8        # no intent's recall below this

Never imports locust.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from sim._toml import TableReader, read_toml_file
from sim.errors import ConfigError, PlatformError

__all__ = ["nlu", "MAX_UTTERANCES"]

MAX_UTTERANCES = 20_000


def _settings(path: str) -> dict[str, Any]:
    r = TableReader(read_toml_file(path, what="a scenario file").get("nlu"), path, "nlu")
    if not r.table:
        raise ConfigError("has no [nlu] table: which utterance sets to detect, and the intent each must be",
                          source=path, field="nlu")
    r.check_keys({"sets", "rate", "min_confidence", "close_margin", "min_macro_f1", "min_recall"})
    sets = r.get("sets", dict, {})
    if not sets or not all(isinstance(v, str) and v for v in sets.values()):
        raise r.fail("sets", "maps utterance sets to intents: { order_status = \"CheckOrderStatus\" }")
    return {"sets": dict(sets), "rate": r.get("rate", float, 5.0, minimum=0.1, maximum=100.0),
            "min_confidence": r.get("min_confidence", float, 0.5, minimum=0.0, maximum=1.0),
            "close_margin": r.get("close_margin", float, 0.1, minimum=0.0, maximum=1.0),
            "min_macro_f1": r.get("min_macro_f1", float, None, minimum=0.0, maximum=1.0),
            "min_recall": r.get("min_recall", float, None, minimum=0.0, maximum=1.0)}


def _utterances(scenario: Any, path: str, sets: dict[str, str]) -> list[tuple[str, str]]:
    from sim.load.conversation import render
    from sim.load.identity import IdentityFactory
    from sim.load.scenario import TEMPLATE_FIELDS
    from sim.load.utterances import load_sets

    loaded = load_sets(read_toml_file(path, what="a scenario file"), path, TEMPLATE_FIELDS)
    unknown = [s for s in sets if s not in loaded]
    if unknown:
        raise ConfigError(f"[nlu] sets names {unknown[0]!r}, which [utterances] does not define", source=path,
                          field="nlu.sets")
    ids = IdentityFactory(locale=scenario.locale, seed=scenario.seed)
    out = [(render(line, ids.make(i), seq=i, run_id="nlu", prefix=scenario.tag_prefix, flow_id=""), intent)
           for name, intent in sets.items() for i, line in enumerate(loaded[name])]
    if len(out) > MAX_UTTERANCES:
        raise ConfigError(f"{len(out):,} utterances: more than {MAX_UTTERANCES:,}", source=path, field="nlu.sets")
    return out


def _domain(client: Any, flow_id: str) -> tuple[str, str]:
    a = client.get_json(f"/api/v2/flows/{flow_id}/latestconfiguration", "nlu flow configuration")
    settings = (a.body or {}).get("botFlowSettings") if a.status == 200 and isinstance(a.body, dict) else None
    if not settings or not settings.get("nluDomainId"):
        raise ConfigError(f"flow {flow_id} has no NLU domain in its latest configuration (HTTP {a.status}): is it a "
                          "digital bot flow?", field="flows")
    return str(settings["nluDomainId"]), str(settings["nluDomainVersionId"])


def _detect_all(client: Any, domain: str, version: str, items: list[tuple[str, str]], rate: float) -> list[Any]:
    from sim.results.nlu_figures import Detection

    path = f"/api/v2/languageunderstanding/domains/{domain}/versions/{version}/detect"
    out, began = [], time.monotonic()
    for i, (text, expected) in enumerate(items):
        time.sleep(max(0.0, began + i / rate - time.monotonic()))
        a = client.request("POST", path, "nlu detect", body=orjson.dumps({"input": {"text": text}}),
                           retry_transport=True)
        if a.status != 200 or not isinstance(a.body, dict):
            raise PlatformError.from_body(a.status, a.body) if a.status else ConfigError(
                f"detect got no answer: {a.cause or a.error}", field="--target")
        intents = tuple((str(x.get("name")), float(x.get("probability") or 0.0))
                        for x in (a.body.get("output") or {}).get("intents") or ())
        out.append(Detection(text=text, expected=expected, intents=tuple(sorted(intents, key=lambda p: -p[1]))))
        if (i + 1) % 50 == 0:
            print(f"nlu: {i + 1} of {len(items)} utterances detected", file=sys.stderr)
    return out


def _vendor_report(client: Any, domain: str, version: str) -> dict[str, Any]:
    """The platform's own quality report for the domain version (its training utterances cross-validated), read
    beside flowsim's figures: its macro metrics and each intent's share detected right; ``unreadable`` when the
    platform does not answer it (a permission, an older org)."""
    a = client.get_json(f"/api/v2/languageunderstanding/domains/{domain}/versions/{version}/report", "nlu report")
    if a.status != 200 or not isinstance(a.body, dict):
        why = (a.body or {}).get("message") if isinstance(a.body, dict) else (a.cause or a.error)
        return {"unreadable": f"HTTP {a.status or '—'}: {str(why or 'no answer')[:200]}"}
    metrics = {str(m.get("name")): m.get("value") for m in (a.body.get("summary") or {}).get("metrics") or ()
               if isinstance(m, dict)}
    recall = {}
    for row in a.body.get("confusionMatrix") or ():
        if isinstance(row, dict) and isinstance(row.get("name"), str):
            recall[row["name"]] = next((c.get("value") for c in row.get("columns") or ()
                                        if isinstance(c, dict) and c.get("name") == row["name"]), None)
    return {"metrics": metrics, "recall": recall}


def _print_vendor(v: dict[str, Any], f: Any) -> None:
    if "unreadable" in v:
        print(f"vendor     quality report not readable ({v['unreadable']})")
        return
    print("vendor     quality report (the platform's, on its training utterances): "
          + "  ".join(f"{k} {float(x):.2f}" for k, x in v["metrics"].items() if isinstance(x, (int, float))))
    for intent, r in v["recall"].items():
        ours = f.per_intent.get(intent, {}).get("recall")
        beside = f"; this run {ours:.2f}" if ours is not None else "; not in this run's sets"
        print(f"vendor     {intent}: recall {float(r):.2f} on training utterances{beside}"
              if isinstance(r, (int, float)) else f"vendor     {intent}: no recall figure")


def _print(f: Any, cfg: dict[str, Any], header: str, vendor: dict[str, Any]) -> list[tuple[str, bool]]:
    print(header)
    width = max(12, *(len(x) for x in f.labels))
    print(f"confusion  {'expected / detected':<{width}} " + " ".join(f"{x[:width]:>{width}}" for x in f.labels))
    for e, row in f.confusion.items():
        print(f"           {e:<{width}} " + " ".join(f"{row[x]:>{width}}" for x in f.labels))
    for intent, m in f.per_intent.items():
        print(f"intent     {intent:<{width}} precision {m['precision']:.2f}  recall {m['recall']:.2f}  "
              f"F1 {m['f1']:.2f}  ({m['support']:g} utterances)")
    print(f"macro      precision {f.macro['precision']:.2f}  recall {f.macro['recall']:.2f}  F1 {f.macro['f1']:.2f}")
    print("confidence " + "  ".join(f"{k}: {v}" for k, v in f.histogram.items()))
    for c in f.close[:10]:
        print(f"close      {c['text'][:60]!r} ({c['expected']}): {c['top'][0]} {c['top'][1]:.2f} vs "
              f"{c['second'][0]} {c['second'][1]:.2f}")
    for w in f.wrong[:10]:
        print(f"wrong      {w['text'][:60]!r}: expected {w['expected']}, detected {w['detected']} ({w['confidence']:.2f})")
    _print_vendor(vendor, f)
    verdicts = []
    if cfg["min_macro_f1"] is not None:
        verdicts.append((f"min_macro_f1  {f.macro['f1']:.2f} vs {cfg['min_macro_f1']:.2f}",
                         f.macro["f1"] >= cfg["min_macro_f1"]))
    if cfg["min_recall"] is not None:
        low = min(f.per_intent.items(), key=lambda kv: kv[1]["recall"])
        verdicts.append((f"min_recall  lowest {low[0]} {low[1]['recall']:.2f} vs {cfg['min_recall']:.2f}",
                         low[1]["recall"] >= cfg["min_recall"]))
    for text, ok in verdicts:
        print(f"threshold  {'✓ PASS' if ok else '✗ FAIL'} {text}")
    print(f"RESULT     {'PASS' if all(ok for _t, ok in verdicts) else 'FAIL'}")
    return verdicts


def nlu(args: argparse.Namespace) -> int:
    from sim.load.scenario import load_scenario, resolve_target
    from sim.results.nlu_figures import nlu_figures
    from sim.run.prepare import EmbeddedSimulator, client_for

    scenario = load_scenario(args.scenario)
    cfg = _settings(args.scenario)
    items = _utterances(scenario, args.scenario, cfg["sets"])
    target_name = args.target or scenario.target
    sim = EmbeddedSimulator() if target_name == "embedded" else None
    try:
        client = client_for(scenario, resolve_target(target_name, embedded_url=sim.url if sim else None))
        try:
            bot = scenario.flows[0].id
            domain, version = _domain(client, bot)
            detections = _detect_all(client, domain, version, items, cfg["rate"])
            vendor = _vendor_report(client, domain, version)
        finally:
            client.close()
            client.tokens.close()
    finally:
        if sim is not None:
            sim.stop()
    f = nlu_figures(detections, min_confidence=cfg["min_confidence"], close_margin=cfg["close_margin"])
    verdicts = _print(f, cfg, f"nlu        bot {bot}, domain {domain} version {version}: {len(items)} utterances "
                              f"from {len(cfg['sets'])} set(s) at {cfg['rate']:g}/s", vendor)
    if args.json:
        mc = cfg["min_confidence"]
        Path(args.json).write_text(json.dumps({
            "kind": "nlu", "bot": bot, "domain": domain, "version": version, "min_confidence": mc, **f.to_dict(),
            "vendor_report": vendor, "passed": all(ok for _t, ok in verdicts),
            "detections": [{"text": d.text, "expected": d.expected, "detected": d.detected(mc), "intents": d.intents}
                           for d in detections]}, indent=2))
    return 0 if all(ok for _t, ok in verdicts) else 1
