"""Step ``result`` payloads and display names: shaped to exercise a connector.

Payloads use camelCase keys, nested objects, lists, nulls and non-ASCII text; ``recordsProcessed``
drifts from an integer to a string in a few steps; a rare step carries a large transcript.
"""

from __future__ import annotations

import random
from typing import Any

LOCALES = ("en-US", "ko-KR", "de-DE", "es-MX", "ja-JP", "fr-FR")
SAMPLES = ("안녕하세요, 무엇을 도와드릴까요?", "Grüß Gott — willkommen!",
           "¿Dónde está la estación?", "こんにちは、世界", "Ça va très bien 🎧")
LARGE_RESULT_SHARE = 0.003  # ~0.3% of steps carry a ~100 kB transcript
DRIFT_SHARE = 0.04  # recordsProcessed comes back as text ("1.2k") this often

_DISPLAY = {
    "source_script": "Script source",
    "operator_translator": "Translate",
    "operator_normalizer": "Normalize text",
    "operator_phoneme_injector": "Inject phonemes",
    "operator_pronunciation_corrector": "Fix pronunciation",
    "operator_generator": "Generate voice 🎙",
    "validator_error_rate": "Check error rate",
    "validator_naturalness": "Check naturalness",
    "validator_noise": "Check noise",
    "validator_pronunciation": "Check pronunciation",
    "sink_preview": "Preview output",
}


def display_name(node_type: str, pos: int) -> str:
    name = _DISPLAY[node_type]
    if node_type == "operator_translator":
        return f"{name} → {LOCALES[pos % len(LOCALES)]}"
    return name


def _by_type(rng: random.Random, node_type: str) -> dict[str, Any]:
    if node_type == "source_script":
        return {"lineCount": rng.randint(5, 400),
                "sourceFile": {"name": f"script_{rng.randint(1, 99)}_ü.csv",
                               "sizeBytes": rng.randint(1_000, 900_000)},
                "locales": sorted(rng.sample(LOCALES, 2))}
    if node_type == "operator_translator":
        return {"targetLocale": rng.choice(LOCALES), "tokensUsed": rng.randint(100, 90_000),
                "model": {"provider": "openai", "name": rng.choice(["gpt-5-mini", "gpt-5"])},
                "sample": rng.choice(SAMPLES)}
    if node_type == "operator_generator":
        return {"audioSeconds": round(rng.uniform(3, 900), 3),
                "voice": {"id": f"voice-{rng.randint(1, 30)}", "displayName": rng.choice(
                    ["Zoë", "Jae-won", "Ingrid"])},
                "model": {"provider": "elevenlabs", "name": "multilingual-v3"}}
    if node_type.startswith("validator_"):
        score = round(rng.uniform(0.6, 1.0), 4)
        return {"score": score, "threshold": 0.8, "passed": score >= 0.8,
                "metrics": {"wer": round(rng.uniform(0, 0.2), 4),
                            "cer": round(rng.uniform(0, 0.1), 4)}}
    if node_type == "sink_preview":
        return {"outputLineCount": rng.randint(5, 400), "deliveredAudioMs": rng.randint(1, 9)}
    return {"changes": rng.randint(0, 500), "rules": rng.sample(["numbers", "abbrev", "dates"], 2)}


def result(seed: int, wf: int, run: int, seq: int, node: Any) -> dict[str, Any]:
    """The stored result of a completed step (deterministic per step)."""
    rng = random.Random(f"{seed}:result:{wf}:{run}:{seq}")
    records: int | str = rng.randint(1, 5_000)
    if rng.random() < DRIFT_SHARE:
        records = f"{int(records) / 1000:.1f}k"
    payload: dict[str, Any] = {"recordsProcessed": records, "output": f"{node.node_id} ok",
                               "warnings": [] if rng.random() < 0.8 else ["slow provider"],
                               "note": None}
    payload.update(_by_type(rng, node.node_type))
    # Every 50th run carries one for sure, so even a small world exercises large payloads.
    if rng.random() < LARGE_RESULT_SHARE or (run % 50 == 2 and seq == 0):
        payload["transcript"] = ("Lorem ipsum — ünïcödé 🎤 " * 4_000)[:100_000]
    return payload
