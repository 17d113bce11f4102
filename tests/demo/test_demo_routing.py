"""The demo's routing step says what `route eval` ran: its hybrid takes the router named by HYBRID_SCORES."""

from __future__ import annotations

from tokenomy.demo.routing import held_out_summary
from tokenomy.routing.evaluate import HYBRID_SCORES


def test_the_held_out_sentence_names_the_hybrids_router_and_computes_its_figures() -> None:
    result = {
        "held_out": 637,
        "cpt95_classifier": 0.678,
        "cpt95_random": 0.818,
        "policies": [
            {"policy": "always-best", "cost": 10.0, "quality_retained": 1.0, "strong_share": 1.0},
            {"policy": "cascade", "cost": 2.8, "quality_retained": 0.86, "strong_share": 0.2},
            {"policy": "hybrid", "cost": 7.0, "quality_retained": 0.98, "strong_share": 0.609},
        ],
    }
    text = held_out_summary(result)
    assert f"the hybrid ({HYBRID_SCORES} router," in text
    assert "classifier sends 68%" in text and "random 82%" in text
    assert "keeps 86% of strong quality at 28% of its cost" in text and "keeps 98% with 61% strong calls" in text
