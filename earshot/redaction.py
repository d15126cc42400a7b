"""Personal-data redaction for feedback text that leaves the service (webhooks, reports, exports).

Six kinds, each replaced by a tag: email ``<EMAIL>``, phone ``<PHONE>``, card ``<CARD>``,
iban ``<IBAN>``, url ``<URL>``, person ``<PERSON>``.

Which library does what:

* email, phone, card, iban, url: Presidio's pattern recognizers (``presidio-analyzer``), called
  directly, without Presidio's AnalyzerEngine and without any spaCy model or NLP engine:

  - ``EmailRecognizer``: regex, then the domain checked against the public-suffix list that
    ``tldextract`` bundles. This module gives it a ``TLDExtract`` with no suffix-list URLs and no
    cache, so nothing goes to the network (Presidio's default ``tldextract.extract`` downloads the
    list on first use and logs an error traceback when it cannot).
  - ``PhoneRecognizer``: Google's ``phonenumbers`` matcher at leniency VALID for the regions in
    ``PHONE_REGIONS``; a number in ``+`` or ``00`` international form is found whatever its country.
    This module drops identifiers that phonenumbers takes for numbers: a number after an ID word
    ("order no.", "ticket", "invoice", "voucher" ...), glued to a longer token (``INV-347897``),
    inside an IBAN-shaped string, date-shaped (``3.10.2024``), or without ``+``/``00`` and under 8
    or over 13 digits. A bare 10-digit code with no such word ("entered 6031412270 twice") is still
    taken for a US or Indian number.
  - ``CreditCardRecognizer``: regex, then the Luhn check (a number failing Luhn is not a card).
    Its regex leaves out the Mastercard 2-series (2221-2720), which this module adds; it also drops
    hits glued to a longer identifier or after "IMEI"/"serial" (an IMEI always passes Luhn).
  - ``IbanRecognizer``: regex, then the mod-97 check and the country's IBAN format. Its regex wants
    upper case; this module runs it on an upper-cased copy, so ``de89370400440532013000`` counts.
  - ``UrlRecognizer``: regex over a fixed list of top-level domains. This module widens each hit to
    the whole host and path and keeps a schema-less hit (``shop.example.com``) only when its suffix is
    on the bundled public-suffix list and written in lower case, so run-on sentences (``late.Then``,
    ``closed.It``, ``Mr.Smith``) are not URLs.

  Of two overlapping spans the longer wins; at equal length card and IBAN (checksummed) win over
  email, URL, phone and person in that order.

* person: no NER model is available offline, so names are found by a cue heuristic in this module
  (see ``PERSON_CUES``). Strong cues take any capitalised word after them: "my name is X",
  "name: X", titles "Mr/Mrs/Ms/Miss/Mx/Dr/Prof X", "agent named/called X". Weak cues take a word only
  when it is in ``FIRST_NAMES`` (a list of about 400 common first names of several languages, with
  words such as Will, Mark, May, Grace or Frank left out): "I'm/I am/this is X", "Dear X",
  "Hi X", "ask for X", "spoke to/with X", "helped/served by X", "agent/rep X", sign-offs
  ("Thanks, Anna", "Regards,\\nJohn", "- John Smith") and "X at the desk/counter/gate".
  After the first name, up to two more capitalised words (a surname) are taken.

  What it misses: any name without a cue ("Anna was lovely", "ask Priya"), a name after a weak
  cue that is not in ``FIRST_NAMES`` ("Thanks, Oluwaseun"), lower-case names ("my name is anna"),
  initials ("J. Smith" gives "Smith" only after a title). What it wrongly takes: a capitalised
  non-name after a strong cue ("Dr Pepper", "agent named Bot"), a brand that is also a first name
  after a weak cue ("Thanks Zara for nothing"), a brand alone on the line after a sign-off
  ("Regards,\nDelta"). Other brand names and capitalised sentence starts
  are left alone. docs/redaction.md has the measured precision and recall.

Example:
    >>> redactor = Redactor()  # doctest: +SKIP
    >>> redactor.redact("I'm Anna, mail anna.b@example.com or call +44 20 7946 0958")  # doctest: +SKIP
    "I'm <PERSON>, mail <EMAIL> or call <PHONE>"
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from earshot.extras import require

KINDS = ("email", "phone", "card", "iban", "url", "person")
TAGS = {kind: f"<{kind.upper()}>" for kind in KINDS}
# Regions whose national formats count as phone numbers; "+" international numbers count for any.
PHONE_REGIONS = ("US", "GB", "DE", "FR", "IN")
# Presidio's entity name for each kind its recognizers find.
_ENTITIES = {"email": "EMAIL_ADDRESS", "phone": "PHONE_NUMBER", "card": "CREDIT_CARD",
             "iban": "IBAN_CODE", "url": "URL"}
_MASTERCARD_2_SERIES = r"\b(2(?:2[2-9]\d|[3-6]\d\d|7[01]\d|720))[- ]?(\d{4})[- ]?(\d{4})[- ]?(\d{4})\b"

Finder = Callable[[str], list[tuple[int, int]]]


def redactor(kinds: Iterable[str] | None, where: str = "redact") -> Callable[[str], str] | None:
    """``Redactor(kinds).redact`` for the kinds asked for (checked, errors naming ``where``), or None
    when nothing is to be hidden: what ``--redact`` flags and settings turn into.

    Example:
        >>> redactor(None) is None
        True
    """
    kinds = list(kinds or [])
    return Redactor(check_kinds(kinds, where)).redact if kinds else None


def check_kinds(kinds: Iterable[str], where: str = "redact") -> tuple[str, ...]:
    """The kinds in ``KINDS`` order without repeats; a ValueError names any unknown one.

    Example:
        >>> check_kinds(["url", "email", "url"])
        ('email', 'url')
    """
    if isinstance(kinds, str):
        kinds = (kinds,)
    asked = list(kinds)
    unknown = sorted({kind for kind in asked if kind not in KINDS}, key=str)
    if unknown:
        raise ValueError(f"{where}: unknown kind(s) {', '.join(map(repr, unknown))}; "
                         f"known kinds: {', '.join(KINDS)}")
    return tuple(kind for kind in KINDS if kind in asked)


@dataclass(frozen=True)
class Span:
    """One piece of personal data: ``text[start:end]`` of the given kind."""

    start: int
    end: int
    kind: str
    text: str


class Redactor:
    """Finds and replaces personal data of the asked kinds.

    Building one imports Presidio (a few seconds the first time in a process, as Presidio's package
    imports spaCy and transformers); ``kinds=("person",)`` alone needs no library.

    Example:
        >>> Redactor(kinds=("email",)).redact("write to anna@example.com")  # doctest: +SKIP
        'write to <EMAIL>'
    """

    def __init__(self, kinds: Iterable[str] = KINDS) -> None:
        self.kinds = check_kinds(kinds, where="Redactor")
        self._finders = _build_finders(self.kinds)

    def find(self, text: str) -> list[Span]:
        """Non-overlapping spans sorted by start; of two overlapping candidates the longer wins.

        Example:
            >>> Redactor(kinds=("person",)).find("Dear Anna, thanks")
            [Span(start=5, end=9, kind='person', text='Anna')]
        """
        candidates = [(start, end, kind) for kind, finder in self._finders.items()
                      for start, end in finder(text) if end > start]
        return [Span(start, end, kind, text[start:end]) for start, end, kind in _resolve_overlaps(candidates)]

    def redact(self, text: str) -> str:
        """``text`` with each span replaced by its kind's tag.

        Example:
            >>> Redactor(kinds=("person",)).redact("My name is John Smith.")
            'My name is <PERSON>.'
        """
        pieces, last = [], 0
        for span in self.find(text):
            pieces += [text[last:span.start], TAGS[span.kind]]
            last = span.end
        pieces.append(text[last:])
        return "".join(pieces)

    def redact_value(self, value: Any) -> Any:
        """A copy of a JSON-like value with every string redacted (dict keys are kept as they are).

        Example:
            >>> Redactor(kinds=("person",)).redact_value({"texts": ["Dear Anna"], "n": 1})
            {'texts': ['Dear <PERSON>'], 'n': 1}
        """
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {key: self.redact_value(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.redact_value(item) for item in value)
        return value


# Of two overlapping spans of the same length, the checksummed kinds win: phonenumbers, given region DE,
# reads the Visa number 4921026483019884 as +49 2102 ..., a valid German number.
_TIE_ORDER = ("card", "iban", "email", "url", "phone", "person")


def _resolve_overlaps(candidates: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Greedy: longest first (ties: ``_TIE_ORDER``, then earliest), dropping any that overlaps a kept one."""
    kept: list[tuple[int, int, str]] = []
    for start, end, kind in sorted(candidates, key=lambda c: (c[0] - c[1], _TIE_ORDER.index(c[2]), c[0])):
        if all(end <= other_start or start >= other_end for other_start, other_end, _ in kept):
            kept.append((start, end, kind))
    return sorted(kept)


def _build_finders(kinds: tuple[str, ...]) -> dict[str, Finder]:
    """One finder per kind; Presidio is imported only when a pattern kind is asked."""
    finders: dict[str, Finder] = {}
    pattern_kinds = [kind for kind in kinds if kind in _ENTITIES]
    if pattern_kinds:
        recognizers = _presidio_recognizers(pattern_kinds)
        for kind in pattern_kinds:
            finders[kind] = _presidio_finder(recognizers[kind], _ENTITIES[kind])
        if "url" in finders:
            finders["url"] = _checked_urls(finders["url"], recognizers["_suffixes"])
        if "phone" in finders:
            finders["phone"] = _checked_phones(finders["phone"])
        if "card" in finders:
            finders["card"] = _checked_cards(finders["card"])
        if "iban" in finders:
            finders["iban"] = _any_case(finders["iban"])
    if "person" in kinds:
        finders["person"] = find_person_spans
    return finders


def _presidio_recognizers(kinds: list[str]) -> dict[str, Any]:
    """Presidio's recognizers for ``kinds`` plus an offline ``tldextract`` under ``"_suffixes"``."""
    require("presidio_analyzer", extra="redact", feature="earshot.redaction")
    tldextract = require("tldextract", extra="redact", feature="earshot.redaction")
    from presidio_analyzer import Pattern
    from presidio_analyzer.predefined_recognizers import (CreditCardRecognizer, EmailRecognizer, IbanRecognizer,
                                                          PhoneRecognizer, UrlRecognizer)

    # No suffix-list URLs and no cache: the public-suffix list bundled with tldextract, no network.
    suffixes = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    class OfflineEmailRecognizer(EmailRecognizer):
        """Presidio's email recognizer checking domains against the bundled suffix list only."""

        def validate_result(self, pattern_text: str) -> bool:
            return suffixes(pattern_text).fqdn != ""

    makers = {
        "email": OfflineEmailRecognizer,
        "phone": lambda: PhoneRecognizer(supported_regions=PHONE_REGIONS, leniency=1),
        "card": lambda: CreditCardRecognizer(patterns=[*CreditCardRecognizer.PATTERNS,
                                                       Pattern("Mastercard 2-series", _MASTERCARD_2_SERIES, 0.3)]),
        "iban": IbanRecognizer,
        "url": UrlRecognizer,
    }
    return {**{kind: makers[kind]() for kind in kinds}, "_suffixes": suffixes}


def _presidio_finder(recognizer: Any, entity: str) -> Finder:
    """``text -> [(start, end)]`` from one Presidio recognizer (no NLP artifacts: no spaCy model)."""
    def find(text: str) -> list[tuple[int, int]]:
        return [(result.start, result.end) for result in recognizer.analyze(text, entities=[entity], nlp_artifacts=None)]
    return find


# A number right after one of these words is an identifier, not a phone number ("order no. 8640140046").
_ID_CUE = re.compile(r"(?i:\b(?:order|ticket|e-ticket|invoice|booking|reference|ref|tracking|case|account|acct|"
                     r"customer|member|membership|confirmation|reservation|flight|policy|serial|transaction|"
                     r"receipt|parcel|shipment|voucher|coupon|promo|code|id)(?:\s*(?:no\.?|nr\.?|num\.?|number|#|id))?\s*[:#]?\s*)$")
_DEVICE_CUE = re.compile(r"(?i:\b(?:imei|meid|serial(?:\s+(?:no\.?|number))?|s/n)\s*[:#]?\s*)$")
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DATE = re.compile(r"^\d{1,4}[./-]\d{1,2}[./-]\d{1,4}$")
# IBAN-shaped, whatever its check digits: digits inside it are not a phone number.
_IBAN_SHAPE = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b")


def _standalone_numbers(find_numbers: Finder) -> Finder:
    """Drops hits that are part of a longer identifier: glued by ``-``, ``/`` or ``.`` to more
    characters (``931-6619485-2002650``, ``INV-347897``), written after ``#``, or inside an
    IBAN-shaped string whose check digits fail (``AT51 4750 6867 0188 5477``)."""
    def find(text: str) -> list[tuple[int, int]]:
        ibans = [match.span() for match in _IBAN_SHAPE.finditer(text)]
        return [(start, end) for start, end in find_numbers(text)
                if not re.search(r"(?:\w[-/.]|#)$", text[max(0, start - 2):start])
                and not re.match(r"[-/.]\w", text[end:end + 2])
                and not any(start < iban_end and iban_start < end for iban_start, iban_end in ibans)]
    return find


def _checked_cards(find_cards: Finder) -> Finder:
    """Luhn-valid numbers, less those glued to a longer identifier (``_standalone_numbers``) or after
    "IMEI"/"serial" (an IMEI is 15 digits with a Luhn check digit, so it always passes)."""
    standalone = _standalone_numbers(find_cards)

    def find(text: str) -> list[tuple[int, int]]:
        return [(start, end) for start, end in standalone(text)
                if not _DEVICE_CUE.search(text[max(0, start - 20):start])]
    return find


def _any_case(find_ibans: Finder) -> Finder:
    """Presidio's IBAN regex wants upper case: run it on a copy with ASCII letters upper-cased (same
    offsets; ``str.upper`` would turn ``ß`` into two letters)."""
    def find(text: str) -> list[tuple[int, int]]:
        return find_ibans(text.translate(_ASCII_UPPER))
    return find


def _checked_phones(find_phones: Finder) -> Finder:
    """phonenumbers' valid numbers, less identifiers: after an ID word ("order", "ticket", "invoice"
    ...), glued to a longer token or in an IBAN shape (see ``_standalone_numbers``), date-shaped
    (``3.10.2024``), or without ``+``/``00`` and under 8 or over 13 digits (phonenumbers, given
    region DE, reads the 16 digits 4933 2150 4192 3005 as +49 ...)."""
    standalone = _standalone_numbers(find_phones)

    def find(text: str) -> list[tuple[int, int]]:
        spans = []
        for start, end in standalone(text):
            number = text[start:end]
            if _ID_CUE.search(text[max(0, start - 40):start]) or _DATE.match(number):
                continue
            digits = sum(char.isdigit() for char in number)
            if number.startswith(("+", "00")) or 8 <= digits <= 13:
                spans.append((start, end))
        return spans
    return find


_HOST_TAIL = re.compile(r"[\w.\-]*")
_PATH_TAIL = re.compile(r"(?::\d+)?(?:[/?#][^\s<>\"'()\[\]{}]*)?")
_URL_TRAILING = ".,;:!?'\""
_SCHEMA = re.compile(r"(?i)^[a-z][a-z0-9+.-]*://")


def _checked_urls(find_urls: Finder, suffixes: Any) -> Finder:
    """Presidio's URL hits widened to the whole host and path; schema-less ones need a real lower-case suffix."""
    def find(text: str) -> list[tuple[int, int]]:
        spans = set()
        for start, end in find_urls(text):
            end = _widened_url_end(text, start, end)
            inside_word = start > 0 and (text[start - 1].isalnum() or text[start - 1] in "@.-_")
            if inside_word or text[end:end + 1] == "@":
                continue  # part of a longer word or of an email address
            if _SCHEMA.match(text[start:end]) or _plausible_host(text[start:end], suffixes):
                spans.add((start, end))
        return sorted(spans)
    return find


def _widened_url_end(text: str, start: int, end: int) -> int:
    """``end`` moved over the rest of the host (Presidio stops ``acme.company`` after ``.com``), any
    port and path, then back over trailing punctuation."""
    end = _HOST_TAIL.match(text, end).end()
    end = _PATH_TAIL.match(text, end).end()
    while end > start + 1 and text[end - 1] in _URL_TRAILING:
        end -= 1
    return end


def _plausible_host(url: str, suffixes: Any) -> bool:
    """``shop.example.com/x`` yes; ``late.Then`` or ``late.It`` (run-on sentences) or ``v1.2`` no."""
    parts = suffixes(re.split(r"[/?#:]", url, maxsplit=1)[0])
    return bool(parts.domain) and bool(parts.suffix) and parts.suffix == parts.suffix.lower()


# ---------------------------------------------------------------------------------------------
# person: cue heuristic

# Common first names of several languages; words that are also ordinary English words (Will, Mark,
# May, June, Grace, Hope, Frank, Bill, Rose, Joy, Guy, Art, Sunny ...) are left out on purpose.
FIRST_NAMES = frozenset("""
Aaron Abdul Abigail Adam Adrian Ahmed Aisha Alan Albert Alberto Alejandro Alex Alexander Alexandra
Alexis Ali Alice Alicia Alison Amanda Amber Amelia Amir Amit Amy Ana Anand Andrea Andreas Andrew
Andy Angela Anil Anita Anja Anjali Ann Anna Anne Annie Anthony Antoine Antonio Anya Arjun Arthur
Ashley Aurelie Ava Barbara Ben Benjamin Bernard Beth Betty Brandon Brenda Brian Bruno Bryan Camille
Carl Carla Carlos Carmen Carol Caroline Catherine Cathy Charles Charlie Charlotte Chen Chloe Chris
Christian Christina Christine Christopher Claire Clara Claudia Colin Connor Craig Cynthia Daniel
Daniela Danielle Danny David Debbie Deborah Deepak Denise Dennis Derek Diana Diane Diego Divya
Dominic Donald Donna Dorothy Doug Douglas Dylan Ed Eddie Edward Elena Elif Elijah Elisa Elizabeth
Ella Ellen Emily Emma Eric Erik Erin Ethan Eva Evelyn Fabian Farah Fatima Felix Fernando Fiona
Florian Francesca Francesco Francis Francisco Franz Fred Gabriel Gabriela Gary Gemma George Georgia
Gerald Gita Giulia Giuseppe Greg Gregory Hannah Hans Harry Hassan Heather Heidi Helen Helena Henry
Hiroshi Hugo Hussein Ian Igor Ines Irene Isaac Isabel Isabella Isabelle Ivan Jack Jacob Jacqueline
Jake James Jamie Jan Jana Jane Janet Janice Jason Javier Jean Jeff Jeffrey Jennifer Jenny Jeremy
Jerry Jessica Jim Jimmy Joan Joanna Joe Joel Johann Johannes John Jonas Jonathan Jordan Jorge
Jose Joseph Joshua Juan Judith Judy Julia Julian Julie Julien Justin Kai Karen Karl Kate Katharina
Katherine Kathleen Kathy Katie Kayla Keith Kelly Ken Kenji Kenneth Kevin Kim Kimberly Kyle Lakshmi
Lara Laura Lauren Laurent Lea Leah Lena Leon Leonie Liam Linda Lisa Logan Lorenzo Louis Louise
Lucas Lucia Lucy Luis Luka Lukas Luke Maria Marie Marina Mario Marion Marta Martha Martin Mary
Mateo Mathieu Matt Matthew Maurice Max Maximilian Maya Megan Mehmet Melissa Mia Michael Michelle
Miguel Mike Mila Mohamed Mohammed Monica Muhammad Nadia Nancy Naomi Natalie Nathan Neha Nicholas
Nick Nicole Nikhil Nikita Nina Noah Noor Olga Oliver Olivia Omar Oscar Pablo Pamela Paolo Patricia
Patrick Paul Paula Pedro Peter Philip Philippe Pierre Pooja Priya Rachel Rahul Raj Rajesh Ralph
Ramon Raquel Ravi Raymond Rebecca Rita Robert Roberto Robin Roger Rohan Ronald Rosa Ruth Ryan Sabine
Sakura Sally Samantha Samuel Sandra Sara Sarah Scott Sean Sebastian Sergei Sergio Shannon Sharon
Shirley Simon Simone Sofia Sophia Sophie Stefan Stefanie Stephanie Stephen Steve Steven Sunil
Susan Suzanne Svetlana Tanya Teresa Theresa Thomas Tiffany Tim Timothy Tina Tobias Todd Tom Tommy
Tony Tyler Valentina Vanessa Vera Veronica Victor Victoria Vikram Vincent Virginia Walter Wayne
Wei Wendy William Yasmin Yuki Yusuf Zach Zachary Zara Zoe
""".split())

# Capitalised words that follow cues but are not names ("Dear Customer Service", "Thanks Team").
NOT_NAMES = frozenset("""
A All An And Agent Again Also Any Bank Best But Customer Customers Dear Do Everyone Folks For Friend
Friends From Good Great Guys Hello Hey Hi How I If In Is It Just Madam Manager Many My No Not Now
Of On Or Our Please Regards Service Services She He Sir So Sorry Staff Still Support Team Thank Thanks
That The Their There They This To Today We What When Why With Yes You Your Monday Tuesday Wednesday
Thursday Friday Saturday Sunday January February March April May June July August September October
November December
""".split())

# A word, joined by an apostrophe or hyphen (O'Brien, Mary-Jane), less a possessive 's (Anna's).
_TOKEN = re.compile(r"[^\W\d_]+(?:['’-](?![sS]\b)[^\W\d_]+)*")
# One space between the words of a name, with an optional particle ("Ludwig van Beethoven").
_SURNAME_GAP = re.compile(r"[ ](?:(?:van|von|de|der|den|da|di|del|la|le|al|bin|ten)[ ])?")
_ROLES = (r"agent|rep|representative|attendant|flight attendant|steward|stewardess|supervisor|manager|"
          r"employee|cashier|driver|pilot|technician|operator|host|hostess|nurse|guy|lady|woman|man|"
          r"gentleman|girl|someone|person|associate|advisor|adviser|clerk")
_SIGN_OFFS = (r"thanks|thank you|thx|cheers|regards|best regards|kind regards|warm regards|best wishes|"
              r"best|sincerely|yours sincerely|yours truly|yours|respectfully|many thanks|love|signed")

# (cue regex ending where the name starts, mode). "strong": any capitalised word; "weak": only a word
# in FIRST_NAMES; "own line": any capitalised words that fill the rest of their line (a sign-off
# on its own line: "Regards,\nChidi Okafor").
PERSON_CUES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i:\bname(?:\s+is|\s+was|'s|’s)|\bname\s*:|\bcall\s+me|\bi\s+am\s+called)\s+"), "strong"),
    (re.compile(r"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\.?\s+"), "strong"),
    (re.compile(rf"(?i:\b(?:{_ROLES})\s+(?:named|called|by\s+the\s+name\s+of))\s+"), "strong"),
    (re.compile(rf"(?im:^[ \t]*(?:{_SIGN_OFFS})[ \t]*[,!.:]?[ \t]*\r?\n[ \t]*)"), "own line"),
    (re.compile(r"(?i:\b(?:i'm|i’m|i\s+am|im|this\s+is|it's|it’s|it\s+is))\s+"), "weak"),
    (re.compile(r"(?i:\b(?:dear|hi|hello|hey|ask(?:ed)?\s+for|spoke\s+(?:to|with)|talked\s+(?:to|with)|"
                r"thanks\s+to|(?:helped|served|assisted|handled|looked\s+after)\s+by))\s*,?\s+"), "weak"),
    (re.compile(rf"(?i:\b(?:{_ROLES}))\s+"), "weak"),
    (re.compile(rf"(?i:\b(?:{_SIGN_OFFS}))\s*[,!.:]?[ \t]*(?:\r?\n[ \t]*)*"), "weak"),
    (re.compile(r"(?:^|(?<=\s))[-–—~]+[ \t]*"), "weak"),
)
_LINE_END = re.compile(r"[ \t.!]*(?:\r?\n|$)")
_NAME_BEFORE = re.compile(r"(?i:\s+(?:at|on|behind|from)\s+the\s+(?:\w+\s+)?(?:desk|counter|gate|reception))")


def find_person_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of names found by the cues in ``PERSON_CUES`` and "X at the desk".

    Example:
        >>> find_person_spans("Thanks, Anna Lopez")
        [(8, 18)]
    """
    spans = set()
    for cue, mode in PERSON_CUES:
        for match in cue.finditer(text):
            name = _name_after(text, match.end(), strong=mode != "weak")
            if name and (mode != "own line" or _LINE_END.match(text, name[1])):
                spans.add(name)
    for match in _NAME_BEFORE.finditer(text):
        name = _name_before(text, match.start())
        if name:
            spans.add(name)
    return sorted(spans)


def _is_capitalised(token: str) -> bool:
    """``Anna``, ``O'Brien``, ``McDonald``; not ``anna``, ``ANNA`` or ``A``."""
    return len(token) > 1 and token[0].isupper() and any(char.islower() for char in token[1:])


def _name_after(text: str, position: int, strong: bool) -> tuple[int, int] | None:
    """The name starting at ``position``: a first word (any capitalised one if ``strong``, else one
    in FIRST_NAMES) and up to two more capitalised words on the same line."""
    first = _TOKEN.match(text, position)
    if not first or not _is_capitalised(first.group()) or first.group() in NOT_NAMES:
        return None
    if not strong and first.group() not in FIRST_NAMES:
        return None
    return first.start(), _surname_end(text, first.end())


def _surname_end(text: str, end: int) -> int:
    """End of the name after extending ``end`` over up to two capitalised words (particles allowed)."""
    taken = 0
    while taken < 2:
        match = _SURNAME_GAP.match(text, end)
        word = _TOKEN.match(text, match.end()) if match else None
        if not word or not _is_capitalised(word.group()) or word.group() in NOT_NAMES:
            return end
        end, taken = word.end(), taken + 1
    return end


def _name_before(text: str, cue_start: int) -> tuple[int, int] | None:
    """The name ending at ``cue_start`` ("Anna Lopez at the desk"): its first word in FIRST_NAMES."""
    words = list(_TOKEN.finditer(text[max(0, cue_start - 60):cue_start]))
    offset = max(0, cue_start - 60)
    if not words or words[-1].end() + offset != cue_start:
        return None
    chain = [words[-1]]
    for word in reversed(words[:-1]):
        if len(chain) == 3 or text[word.end() + offset:chain[-1].start() + offset] != " ":
            break
        chain.append(word)
    for word in reversed(chain):  # earliest first: the longest name whose first word is a first name
        if word.group() in FIRST_NAMES:
            start = word.start() + offset
            names = _TOKEN.findall(text[start:cue_start])
            if all(_is_capitalised(name) and name not in NOT_NAMES for name in names):
                return start, cue_start
    return None
