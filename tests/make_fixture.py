"""Writes tests/data/feedback.csv: ~200 synthetic feedback rows written for earshot's tests.

Run `python tests/make_fixture.py` to regenerate; the output is deterministic.
"""

import csv
import random
from pathlib import Path

PAIN = {
    "late": ["my flight was delayed {n} hours", "the train arrived {n} hours late again",
             "delivery is {n} days late and nobody answers", "still waiting, {n} hours behind schedule"],
    "rude_staff": ["the agent was incredibly rude to me", "staff shouted at my kids at the gate",
                   "the cashier was rude and dismissive", "your employee insulted me on the phone"],
    "billing": ["I was charged twice for one ticket", "you billed my card {n} times this month",
                "the invoice shows a fee I never agreed to", "refund of {n} dollars never reached my account"],
    "lost_item": ["my bag never arrived in {city}", "you lost my luggage on the way to {city}",
                  "the parcel went missing near {city}", "lost suitcase, nobody knows where it is"],
}
POSITIVE = ["thank you so much, great service in {city}", "the crew was lovely and the trip was smooth",
            "fantastic support, problem solved in minutes", "love the new app, booking was easy"]
NEUTRAL = ["what time does the {city} office open", "is there wifi on the {city} route",
           "how do I change my email address", "does the ticket include a meal"]
CITIES = ["Boston", "Denver", "Lisbon", "Osaka", "Lagos", "Quito"]


def rows(seed: int = 7) -> list[dict[str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(36):
        for label, templates in PAIN.items():
            text = rng.choice(templates).format(n=rng.randint(2, 9), city=rng.choice(CITIES))
            labels = [label]
            if rng.random() < 0.15:  # some texts have two pain points
                other = rng.choice([k for k in PAIN if k != label])
                text += " and " + rng.choice(PAIN[other]).format(n=rng.randint(2, 9), city=rng.choice(CITIES))
                labels.append(other)
            out.append({"text": text.capitalize() + ".", "sentiment": "negative", "pain_points": ";".join(labels)})
    for _ in range(30):
        out.append({"text": rng.choice(POSITIVE).format(city=rng.choice(CITIES)).capitalize() + "!",
                    "sentiment": "positive", "pain_points": ""})
        out.append({"text": rng.choice(NEUTRAL).format(city=rng.choice(CITIES)).capitalize() + "?",
                    "sentiment": "neutral", "pain_points": ""})
    rng.shuffle(out)
    return out


if __name__ == "__main__":
    target = Path(__file__).parent / "data" / "feedback.csv"
    with open(target, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "sentiment", "pain_points"])
        writer.writeheader()
        writer.writerows(rows())
    print(f"wrote {target}")
