"""Precision and recall of earshot.redaction on a seeded synthetic set of customer-feedback texts.

Each text is written from a template (tweet, email, chat) with random values: emails, phone numbers in
national and international formats of several countries, valid and invalid card numbers, valid and
invalid IBANs of ten countries, URLs, names after cues and without, plus distractors (order, ticket and
tracking numbers, dates, times, prices, flight numbers, brands after name cues). The true spans are known
from the templates; invalid cards and IBANs and all distractors are not personal data.

Matching is span-level by overlap: a found span counts as correct when it overlaps a true span of the
same kind, and a true span as found when a found span of its kind overlaps it. ``exact`` counts the true
spans found with the same start and end; ``hidden`` counts the true spans overlapped by a found span of
any kind (the text is gone, even if under another tag).

    python benchmarks/redaction.py --n 600 --seed 0 --json /tmp/redaction.json
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from dataclasses import dataclass, field

import phonenumbers

from earshot.redaction import KINDS, Redactor

FIRST = """Anna John Sarah Michael Priya Rahul Emma Lukas Sophie Pierre Maria Carlos Fatima Ahmed Chen Yuki
Olga Ivan Hannah Thomas Laura David Aisha Omar Julia Daniel Lena Felix Claire Julien Elena Marco Grace Mark
Oluwaseun Siobhan Thabo Kwame Aoife Bjorn Dmitri Xiaoming Ngozi Mateus Ines Kofi Anneliese Tariq Ingrid
Soren Leilani Chidi Rosalind Cormac Esperanza Bartholomew Wilhelmina Nkechi Ragnhild Jarrah""".split()
LAST = """Smith Jones Patel Sharma Muller Schmidt Dubois Martin Garcia Rossi Nguyen Kim Okafor O'Brien
McDonald Kowalski Novak Haddad Tanaka Silva Johansson Bakker Fischer Moreau Khan Singh""".split()
BRANDS = """Delta United Lufthansa Vodafone Amazon Uber Airbnb Ryanair Comcast Verizon Tesla Zara Ikea Apple
Samsung Emirates Expedia Spotify Netflix Booking Marriott Hilton Virgin Orange Telekom""".split()
DOMAINS = ["gmail.com", "outlook.com", "yahoo.fr", "web.de", "example.co.uk", "mail.example.org",
           "company.io", "uni-hamburg.de", "hotmail.it", "proton.me", "acme-corp.com", "rediffmail.com"]
URL_HOSTS = ["www.example.com", "shop.example.de", "example.co.uk", "bit.ly", "t.co", "acme.company",
             "my-blog.net", "support.brand.fr", "www.travel.agency", "photos.example.org", "status.acme.io"]

# (country, BBAN layout): n digit, a upper letter, c digit or upper letter
IBAN_LAYOUTS = {"DE": "n" * 18, "GB": "a" * 4 + "n" * 14, "FR": "n" * 10 + "c" * 11 + "n" * 2, "ES": "n" * 20,
                "NL": "a" * 4 + "n" * 10, "IT": "a" + "n" * 10 + "c" * 12, "CH": "n" * 5 + "c" * 12,
                "AT": "n" * 16, "BE": "n" * 12, "PL": "n" * 24}
PHONE_REGIONS = {"US": 6, "GB": 5, "DE": 4, "FR": 4, "IN": 4, "ES": 1, "IT": 1, "NL": 1, "AU": 1, "BR": 1,
                 "JP": 1, "ZA": 1}

TEMPLATES: list[tuple[str, str]] = [
    # (template, family); {slot}, or {slot|label} where the label names a person's cue
    ("@{brand} my refund never came. email me at {email} please", "tweet"),
    ("Contact me on {email} or {phone}, I've been waiting 3 weeks for order {order}", "email"),
    ("Hi, I am {first|I am} and my flight {flight} on {date} was cancelled. Call {phone}", "chat"),
    ("My name is {full|my name is}, booking ref {ref}. You charged my card {card} twice!", "email"),
    ("charged {price} on card {card} for order {order}, please refund", "chat"),
    ("The card {badcard} was declined but the money left my account", "chat"),
    ("Please transfer the refund to {iban} (account holder {full|no cue})", "email"),
    ("Refund to IBAN {iban} not {badiban}, that was a typo", "email"),
    ("My IBAN is {badiban} I think, can you check", "chat"),
    ("Your site {url} keeps crashing at checkout, ticket {ticket}", "tweet"),
    ("see screenshot {url} - order {order} still not shipped", "tweet"),
    ("Dear {first|Dear},\nthe parcel {tracking} never arrived.\nRegards,\n{full|sign-off}", "email"),
    ("Thanks, {first|sign-off}", "chat"),
    ("Great help today. Thanks {first|sign-off}!", "tweet"),
    ("Cheers,\n{full|sign-off}", "email"),
    ("loved the upgrade on {flight} - {full|dash sign-off}", "tweet"),
    ("{first|at the desk} at the front desk was so rude on {date} at {time}", "tweet"),
    ("please ask for {first|ask for} next time, she sorted it in 5 min", "tweet"),
    ("I spoke to {first|spoke to} and was promised {price} back", "chat"),
    ("I was helped by {first|helped by} in store, 10/10", "tweet"),
    ("The agent named {first|agent named} hung up on me at {time}", "chat"),
    ("the agent {first|agent X} was lovely, order {order}", "chat"),
    ("Mr {last|title} from your team never called back on {phone}", "email"),
    ("Dr. {last|title} recommended your clinic, but wait was 2 hours", "tweet"),
    ("Mrs {full|title} here, my card {card} expired, new one is {card}", "email"),
    ("{first|no cue} was amazing, fixed my router in minutes", "tweet"),
    ("shoutout to {full|no cue} at your Leeds branch!!", "tweet"),
    ("{first|no cue} from billing called me back, case {case}", "chat"),
    ("Dear {brand}, your app deleted my data. Frank feedback: fix it", "email"),
    ("Thanks {brand} for nothing. Flight {flight} delayed {hours} hours", "tweet"),
    ("I'm with {brand} since {year} and this is the worst service", "tweet"),
    ("Hi {brand} Support Team, order {order} arrived broken", "email"),
    ("Will someone from {brand} answer? Seat {seat} was broken", "tweet"),
    ("call me on {phone} or {phone} after {time}", "chat"),
    ("new number: {phone}. old one {phone} no longer works", "chat"),
    ("Order {order} placed {date}, paid {price}, tracking {tracking}", "email"),
    ("my e-ticket {ticket} for flight {flight} on {date} is not showing", "email"),
    ("invoice {invoice} lists {price} but I paid {price}", "email"),
    ("Hello, this is {first|this is}. My email changed to {email}", "chat"),
    ("I'm {full|I'm}, account {account}, still no refund", "chat"),
    ("Best regards, {full|sign-off} | {phone} | {email}", "email"),
    ("check {url} and {url}, both show the wrong price {price}", "tweet"),
    ("Delivery to {postcode} on {date} never happened. Version {version} of the app", "chat"),
    ("replacement phone still not working, IMEI {imei}, bought {date}", "chat"),
    ("my voucher {voucher} was rejected at checkout", "tweet"),
    ("entered {voucher} twice at checkout and it still fails", "tweet"),
    ("{brand} lost my bag again.Then the desk closed.It is a joke, {hours} hours", "tweet"),
    ("flight {flight} was late.So was the refund.Not ok, see fig.1 in my e-mail", "tweet"),
    ("Name: {full|name:}\nPhone: {phone}\nIssue: card {badcard} rejected", "email"),
]

_SLOT = re.compile(r"\{(\w+)(?:\|([^}]*))?\}")


@dataclass
class Sample:
    """One synthetic text with its true spans ``(start, end, kind, label)``."""

    text: str
    truth: list[tuple[int, int, str, str]] = field(default_factory=list)


class Values:
    """Random slot values, each as ``(string, kind or None, label)``; kind None is a distractor."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def digits(self, count: int) -> str:
        return "".join(self.rng.choice("0123456789") for _ in range(count))

    def first(self) -> tuple[str, str | None, str]:
        return self.rng.choice(FIRST), "person", "name"

    def full(self) -> tuple[str, str | None, str]:
        return f"{self.rng.choice(FIRST)} {self.rng.choice(LAST)}", "person", "name"

    def last(self) -> tuple[str, str | None, str]:
        return self.rng.choice(LAST), "person", "name"

    def email(self) -> tuple[str, str | None, str]:
        first, last = self.rng.choice(FIRST).lower(), self.rng.choice(LAST).lower().replace("'", "").replace(" ", "")
        local = self.rng.choice([f"{first}.{last}", f"{first}{self.digits(2)}", f"{first[0]}{last}",
                                 f"{first}+shop", f"{first}_{last}"])
        return f"{local}@{self.rng.choice(DOMAINS)}", "email", "email"

    def phone(self) -> tuple[str, str | None, str]:
        region = self.rng.choices(list(PHONE_REGIONS), weights=list(PHONE_REGIONS.values()))[0]
        number = self.valid_number(region)
        national_only = region in ("US", "GB", "DE", "FR", "IN")
        styles = ["intl", "e164", "00"] + (["national", "national", "dashes", "dots", "compact"] if national_only else [])
        styles += ["intl (0)"] if region in ("GB", "DE") else []
        style = self.rng.choice(styles)
        return format_phone(number, style), "phone", f"{region} {style}"

    def valid_number(self, region: str) -> phonenumbers.PhoneNumber:
        kind = self.rng.choice([phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE])
        example = phonenumbers.example_number_for_type(region, kind)
        significant = phonenumbers.national_significant_number(example)
        for _ in range(500):
            keep = self.rng.randint(1, 3)
            candidate = significant[:keep] + self.digits(len(significant) - keep)
            number = phonenumbers.parse(f"+{example.country_code}{candidate}")
            if phonenumbers.is_valid_number(number):
                return number
        return example

    def card(self) -> tuple[str, str | None, str]:
        brand, prefix, length = self.rng.choice([("visa", "4", 16), ("mastercard", "5" + str(self.rng.randint(1, 5)), 16),
                                                 ("mastercard-2", str(self.rng.randint(2221, 2720)), 16),
                                                 ("amex", self.rng.choice(["34", "37"]), 15), ("discover", "6011", 16)])
        body = prefix + self.digits(length - len(prefix) - 1)
        style = self.rng.choice(["spaces", "dashes", "compact"])
        return format_card(body + luhn_digit(body), style), "card", f"{brand} {style}"

    def badcard(self) -> tuple[str, str | None, str]:
        number, _, label = self.card()
        digits = re.sub(r"\D", "", number)
        wrong = digits[:-1] + str((int(digits[-1]) + self.rng.randint(1, 9)) % 10)
        return format_card(wrong, label.split()[-1]), None, "invalid card"

    def iban(self) -> tuple[str, str | None, str]:
        country = self.rng.choice(list(IBAN_LAYOUTS))
        bban = "".join(self.rng.choice({"n": "0123456789", "a": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                                        "c": "0123456789" * 3 + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}[c])
                       for c in IBAN_LAYOUTS[country])
        compact = country + iban_check_digits(country, bban) + bban
        style = self.rng.choice(["grouped", "grouped", "grouped", "compact", "compact", "lower case"])
        return format_iban(compact, style), "iban", f"{country} {style}"

    def badiban(self) -> tuple[str, str | None, str]:
        text, _, label = self.iban()
        check = int(text[2:4])
        wrong = f"{(check + self.rng.randint(1, 50)) % 97 + 2:02d}"
        return text[:2] + wrong + text[4:], None, "invalid iban"

    def url(self) -> tuple[str, str | None, str]:
        host = self.rng.choice(URL_HOSTS)
        path = self.rng.choice(["", "/", f"/p/{self.digits(6)}", "/checkout?step=2", f"/s/{self.digits(4)}abc"])
        schema = self.rng.choice(["https://", "http://", ""])
        return f"{schema}{host}{path}", "url", "schema" if schema else "no schema"

    def brand(self) -> tuple[str, str | None, str]:
        return self.rng.choice(BRANDS), None, "brand"

    def order(self) -> tuple[str, str | None, str]:
        return self.rng.choice([f"#{self.digits(8)}", f"{self.digits(3)}-{self.digits(7)}-{self.digits(7)}",
                                f"no. {self.digits(10)}", f"A{self.digits(9)}", self.digits(7)]), None, "order"

    def imei(self) -> tuple[str, str | None, str]:
        body = self.rng.choice(["35", "86", "01"]) + self.digits(12)
        return body + luhn_digit(body), None, "imei"

    def voucher(self) -> tuple[str, str | None, str]:
        return self.digits(self.rng.choice([8, 10, 12])), None, "voucher"

    def ticket(self) -> tuple[str, str | None, str]:
        return self.rng.choice(["016", "220", "125", "001"]) + self.digits(10), None, "ticket"

    def tracking(self) -> tuple[str, str | None, str]:
        return self.rng.choice([f"1Z{self.digits(3)}AA{self.digits(10)}", f"JJD{self.digits(15)}",
                                f"{self.digits(12)}"]), None, "tracking"

    def date(self) -> tuple[str, str | None, str]:
        day, month = self.rng.randint(1, 28), self.rng.randint(1, 12)
        return self.rng.choice([f"{day:02d}/{month:02d}/2024", f"2024-{month:02d}-{day:02d}", f"{day}.{month}.2024",
                                f"March {day}"]), None, "date"

    def time(self) -> tuple[str, str | None, str]:
        return f"{self.rng.randint(0, 23):02d}:{self.rng.randint(0, 59):02d}", None, "time"

    def price(self) -> tuple[str, str | None, str]:
        return self.rng.choice([f"${self.rng.randint(1, 2000):,}.{self.digits(2)}", f"€{self.rng.randint(5, 900)},{self.digits(2)}",
                                f"£{self.rng.randint(5, 900)}"]), None, "price"

    def flight(self) -> tuple[str, str | None, str]:
        return self.rng.choice(["UA", "LH", "BA", "AF", "6E", "DL"]) + self.rng.choice(["", " "]) + str(self.rng.randint(1, 9999)), None, "flight"

    def other(self, slot: str) -> tuple[str, str | None, str]:
        value = {"ref": "".join(self.rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(6)),
                 "case": f"{self.digits(8)}", "invoice": f"INV-{self.digits(6)}", "account": self.digits(9),
                 "seat": f"{self.rng.randint(1, 40)}{self.rng.choice('ABCDEF')}", "hours": str(self.rng.randint(2, 9)),
                 "year": str(self.rng.randint(2005, 2023)), "postcode": self.rng.choice(["SW1A 1AA", "10115", "75008", "560001"]),
                 "version": f"{self.rng.randint(1, 9)}.{self.rng.randint(0, 20)}.{self.rng.randint(0, 9)}"}[slot]
        return value, None, slot


def luhn_digit(body: str) -> str:
    """The check digit that makes ``body`` + digit pass Luhn."""
    total = 0
    for position, char in enumerate(reversed(body)):
        digit = int(char) * (2 if position % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return str((10 - total % 10) % 10)


def iban_check_digits(country: str, bban: str) -> str:
    """The two mod-97 check digits of an IBAN."""
    numeric = "".join(str(int(char, 36)) for char in bban + country + "00")
    return f"{98 - int(numeric) % 97:02d}"


def format_card(digits: str, style: str) -> str:
    groups = [digits[:4], digits[4:10], digits[10:]] if len(digits) == 15 else [digits[i:i + 4] for i in range(0, 16, 4)]
    return {"spaces": " ", "dashes": "-", "compact": ""}[style].join(groups)


def format_iban(compact: str, style: str) -> str:
    if style == "lower case":
        return compact.lower()
    return compact if style == "compact" else " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))


def format_phone(number: phonenumbers.PhoneNumber, style: str) -> str:
    fmt = phonenumbers.PhoneNumberFormat
    national = phonenumbers.format_number(number, fmt.NATIONAL)
    if style == "intl":
        return phonenumbers.format_number(number, fmt.INTERNATIONAL)
    if style == "intl (0)":  # +44 (0)20 7946 0958, common in UK and German signatures
        code, rest = phonenumbers.format_number(number, fmt.INTERNATIONAL).split(" ", 1)
        return f"{code} (0){rest}"
    if style == "e164":
        return phonenumbers.format_number(number, fmt.E164)
    if style == "00":
        return "00" + phonenumbers.format_number(number, fmt.INTERNATIONAL)[1:]
    if style == "national":
        return national
    digits = re.sub(r"\D", "", national)
    if style == "compact":
        return digits
    separator = "-" if style == "dashes" else "."
    return separator.join([digits[:-7], digits[-7:-4], digits[-4:]]) if len(digits) > 7 else digits


def make_samples(count: int, seed: int) -> list[Sample]:
    """``count`` texts from ``TEMPLATES`` with random values, the same for the same seed."""
    rng = random.Random(seed)
    values = Values(rng)
    samples = []
    for index in range(count):
        template, _ = TEMPLATES[index % len(TEMPLATES)] if index < len(TEMPLATES) else rng.choice(TEMPLATES)
        samples.append(fill(template, values))
    return samples


def fill(template: str, values: Values) -> Sample:
    """The template with each ``{slot}`` replaced, recording the spans of the personal ones."""
    sample, last = Sample(""), 0
    for match in _SLOT.finditer(template):
        sample.text += template[last:match.start()]
        slot = match.group(1)
        maker = getattr(values, slot, None)
        value, kind, label = maker() if maker and slot not in ("digits", "other") else values.other(slot)
        if kind:
            sample.truth.append((len(sample.text), len(sample.text) + len(value), kind, match.group(2) or label))
        sample.text += value
        last = match.end()
    sample.text += template[last:]
    return sample


def score(samples: list[Sample], found: list[list[tuple[int, int, str]]]) -> dict:
    """Per-kind counts, precision and recall (overlap match), plus misses and false hits."""
    rows, misses, false_hits = {}, {kind: [] for kind in KINDS}, {kind: [] for kind in KINDS}
    for kind in KINDS:
        rows[kind] = {"true": 0, "found": 0, "correct_found": 0, "true_found": 0, "exact": 0, "hidden": 0}
    by_label: dict[str, dict[str, list[int]]] = {kind: {} for kind in KINDS}
    for sample, spans in zip(samples, found):
        for start, end, kind, label in sample.truth:
            row = rows[kind]
            same = [s for s in spans if s[2] == kind and s[0] < end and start < s[1]]
            row["true"] += 1
            row["true_found"] += bool(same)
            row["exact"] += any(s[0] == start and s[1] == end for s in same)
            row["hidden"] += any(s[0] < end and start < s[1] for s in spans)
            by_label[kind].setdefault(label, [0, 0])
            by_label[kind][label][0] += 1
            by_label[kind][label][1] += bool(same)
            if not same:
                misses[kind].append({"text": sample.text, "span": sample.text[start:end], "label": label})
        for start, end, kind in spans:
            rows[kind]["found"] += 1
            if any(t[2] == kind and t[0] < end and start < t[1] for t in sample.truth):
                rows[kind]["correct_found"] += 1
            else:
                false_hits[kind].append({"text": sample.text, "span": sample.text[start:end]})
    for row in rows.values():
        row["precision"] = row["correct_found"] / row["found"] if row["found"] else None
        row["recall"] = row["true_found"] / row["true"] if row["true"] else None
    return {"kinds": rows, "recall_by_label": by_label, "misses": misses, "false_hits": false_hits}


def table(result: dict) -> str:
    """The markdown table of ``score``'s per-kind rows."""
    lines = ["| kind | true spans | found spans | precision | recall | exact boundaries | hidden under any tag |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for kind, row in result["kinds"].items():
        precision = "n/a" if row["precision"] is None else f"{row['precision']:.3f}"
        recall = "n/a" if row["recall"] is None else f"{row['recall']:.3f}"
        lines.append(f"| {kind} | {row['true']} | {row['found']} | {precision} ({row['correct_found']}/{row['found']}) "
                     f"| {recall} ({row['true_found']}/{row['true']}) | {row['exact']} | {row['hidden']} |")
    return "\n".join(lines)


def presidio_only_redactor() -> Redactor:
    """A Redactor whose pattern kinds are Presidio's recognizers alone: no URL widening or suffix check,
    no phone, card or IBAN filters (the offline email check, the Mastercard 2-series pattern, the
    overlap rule and the person cues stay)."""
    from earshot import redaction

    redactor = Redactor()
    recognizers = redaction._presidio_recognizers(list(redaction._ENTITIES))
    redactor._finders.update({kind: redaction._presidio_finder(recognizers[kind], entity)
                              for kind, entity in redaction._ENTITIES.items()})
    return redactor


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600, help="number of texts (default 600)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="OUT", help="write counts, recall by label, misses and false hits here")
    parser.add_argument("--examples", type=int, default=3, help="misses and false hits printed per kind")
    parser.add_argument("--presidio-only", action="store_true",
                        help="Presidio's recognizers as they come, without earshot's filters (a baseline)")
    args = parser.parse_args(argv)

    samples = make_samples(args.n, args.seed)
    started = time.perf_counter()
    redactor = presidio_only_redactor() if args.presidio_only else Redactor()
    built = time.perf_counter()
    found = [[(s.start, s.end, s.kind) for s in redactor.find(sample.text)] for sample in samples]
    finished = time.perf_counter()
    result = score(samples, found)
    result.update(n=args.n, seed=args.seed, presidio_only=args.presidio_only, build_s=round(built - started, 2),
                  ms_per_text=round((finished - built) * 1000 / len(samples), 2))
    print(f"{args.n} texts, seed {args.seed}{', Presidio only' if args.presidio_only else ''}; Redactor built in {result['build_s']} s, "
          f"{result['ms_per_text']} ms per text; overlap match\n")
    print(table(result))
    print("\nrecall by label (found/true):")
    for kind, labels in result["recall_by_label"].items():
        print(f"  {kind}: " + ", ".join(f"{label} {hit}/{total}" for label, (total, hit) in sorted(labels.items())))
    for name in ("misses", "false_hits"):
        for kind, items in result[name].items():
            for item in items[:args.examples]:
                print(f"{name[:-2] if name == 'misses' else 'false hit'} [{kind}] {item['span']!r} in {item['text']!r}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(result, out, indent=1, ensure_ascii=False)
    return result


if __name__ == "__main__":
    main()
