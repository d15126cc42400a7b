"""earshot.redaction: personal data found, replaced by tags, and left alone where it is not personal."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from earshot.extras import MissingExtraError
from earshot.redaction import KINDS, Redactor, Span, check_kinds


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor()


def kinds_found(redactor: Redactor, text: str) -> list[tuple[str, str]]:
    return [(span.kind, span.text) for span in redactor.find(text)]


def test_importing_the_module_does_not_import_presidio():
    code = "import sys, earshot.redaction; print('presidio_analyzer' in sys.modules, 'phonenumbers' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_each_kind_is_found_and_replaced_by_its_tag(redactor):
    text = ("I'm Anna, mail anna.b@example.co.uk or call +44 20 7946 0958; card 4111 1111 1111 1111, "
            "IBAN DE89 3704 0044 0532 0130 00, see https://shop.example.com/orders?id=7")
    assert redactor.redact(text) == ("I'm <PERSON>, mail <EMAIL> or call <PHONE>; card <CARD>, "
                                     "IBAN <IBAN>, see <URL>")
    assert {span.kind for span in redactor.find(text)} == set(KINDS)


def test_find_gives_sorted_non_overlapping_spans_with_their_text(redactor):
    text = "Dear Anna, write to anna@example.co.uk or visit www.example.com"
    spans = redactor.find(text)
    assert spans == sorted(spans, key=lambda span: span.start)
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:]))
    assert all(text[span.start:span.end] == span.text for span in spans)
    # the email's domain is also a URL to Presidio: the longer email span wins
    assert [(span.kind, span.text) for span in spans] == [
        ("person", "Anna"), ("email", "anna@example.co.uk"), ("url", "www.example.com")]
    assert isinstance(spans[0], Span)


@pytest.mark.parametrize("card", ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111",
                                  "5555 5555 5555 4444", "2221 0000 0000 0009", "3782 822463 10005"])
def test_luhn_valid_cards_are_redacted(redactor, card):
    assert redactor.redact(f"charged card {card} twice") == "charged card <CARD> twice"


@pytest.mark.parametrize("number", ["4111 1111 1111 1112", "4111-1111-1111-1112", "5555555555554445"])
def test_numbers_failing_luhn_are_left_alone(redactor, number):
    text = f"charged card {number} twice"
    assert redactor.redact(text) == text


def test_an_imei_and_a_luhn_valid_piece_of_an_order_number_are_not_cards(redactor):
    for text in ["IMEI 358270185565311 still locked", "Order 931-6619485-2002650 never came"]:
        assert redactor.redact(text) == text


@pytest.mark.parametrize("iban", ["DE89 3704 0044 0532 0130 00", "GB82 WEST 1234 5698 7654 32",
                                  "DE89370400440532013000", "GB82WEST12345698765432", "gb82west12345698765432"])
def test_ibans_with_valid_check_digits_are_redacted(redactor, iban):
    assert redactor.redact(f"refund to {iban} please") == "refund to <IBAN> please"


@pytest.mark.parametrize("iban", ["DE88 3704 0044 0532 0130 00", "GB83 WEST 1234 5698 7654 32"])
def test_ibans_with_wrong_check_digits_are_left_alone(redactor, iban):
    text = f"refund to {iban} please"
    assert redactor.redact(text) == text


@pytest.mark.parametrize("email", ["anna@example.com", "john.smith+shop@mail.example.co.uk", "j_doe42@uni-hamburg.de"])
def test_emails_are_redacted(redactor, email):
    assert redactor.redact(f"write to {email}.") == "write to <EMAIL>."


@pytest.mark.parametrize("phone", [
    "(415) 555-2671", "415-555-2671", "+1 415 555 2671", "+14155552671",  # US
    "020 7946 0958", "+44 20 7946 0958", "0044 20 7946 0958", "07700 900123",  # GB
    "030 12345678", "+49 (0)30 901820",  # DE
    "01 23 45 67 89", "+33 6 12 34 56 78",  # FR
    "098765 43210", "+91 98765 43210",  # IN
    "+34 612 34 56 78",  # ES, in international form only
])
def test_phone_numbers_in_national_and_international_forms_are_redacted(redactor, phone):
    assert redactor.redact(f"call me on {phone} after 5") == "call me on <PHONE> after 5"


@pytest.mark.parametrize("text", ["order no. 8640140046 arrived broken", "ticket 0164654611877 not showing",
                                  "invoice INV-347897 is wrong", "rude on 3.10.2024 at 07:29",
                                  "flight UA 1234 on 2024-03-15 cost $1,299.99"])
def test_identifiers_dates_and_prices_are_not_phone_numbers(redactor, text):
    assert redactor.redact(text) == text


def test_urls_with_and_without_schema_are_redacted_and_run_on_sentences_are_not(redactor):
    text = "see https://foo.example.com/x?y=1, www.shop.de and acme.company/help. It was late.Then Mr.Smith left."
    assert redactor.redact(text) == "see <URL>, <URL> and <URL>. It was late.Then Mr.Smith left."


@pytest.mark.parametrize("text, name", [
    ("My name is John Smith and I want a refund", "John Smith"),
    ("Name: Oluwaseun Okafor", "Oluwaseun Okafor"),
    ("Mr. O'Brien never called back", "O'Brien"),
    ("Dr Kowalski was great", "Kowalski"),
    ("the agent named Kwame hung up", "Kwame"),
    ("I'm Anna and I'm furious", "Anna"),
    ("Hi, this is Priya from Leeds", "Priya"),
    ("Dear Sarah, the parcel never came", "Sarah"),
    ("please ask for Daniel next time", "Daniel"),
    ("I spoke with Maria twice", "Maria"),
    ("Thanks, Anna", "Anna"),
    ("Great help. Thanks Lukas!", "Lukas"),
    ("Regards,\nJohn", "John"),
    ("Regards,\nChidi Okafor", "Chidi Okafor"),
    ("loved the upgrade - John Smith", "John Smith"),
    ("Sarah at the front desk was rude", "Sarah"),
])
def test_names_after_cues_are_redacted(redactor, text, name):
    assert kinds_found(redactor, text) == [("person", name)]
    assert name not in redactor.redact(text)


@pytest.mark.parametrize("text", [
    "Dear Delta, your app deleted my data.", "Thanks Team", "Best Buy sucks", "Hi Support, help",
    "The flight was late. Great crew though.", "I'm Canadian and I'm Furious", "Will you refund me?",
    "Frank feedback: fix it", "Thanks Lufthansa for nothing", "I spoke to Customer Service",
])
def test_brands_and_capitalised_words_without_a_name_are_left_alone(redactor, text):
    assert redactor.redact(text) == text


def test_names_without_a_cue_are_missed_as_documented(redactor):
    assert redactor.redact("Anna was lovely") == "Anna was lovely"


def test_redact_value_redacts_every_string_of_a_nested_payload(redactor):
    secrets = ["anna@example.com", "+44 20 7946 0958", "4111 1111 1111 1111", "DE89 3704 0044 0532 0130 00",
               "https://example.com/me", "John Smith"]
    payload = {"event": "feedback", "count": 2, "score": 0.5, "ok": True, "none": None,
               "items": [{"text": f"mail {secrets[0]}, call {secrets[1]}", "tags": ["x", f"card {secrets[2]}"]},
                         {"text": f"IBAN {secrets[3]}", "meta": {"link": secrets[4], "who": f"My name is {secrets[5]}"}}],
               "pair": ("Dear Anna", 3)}
    redacted = redactor.redact_value(payload)
    dumped = json.dumps(redacted)
    assert not [secret for secret in secrets + ["Anna"] if secret in dumped]
    assert redacted["items"][0] == {"text": "mail <EMAIL>, call <PHONE>", "tags": ["x", "card <CARD>"]}
    assert redacted["items"][1]["meta"] == {"link": "<URL>", "who": "My name is <PERSON>"}
    assert redacted["pair"] == ("Dear <PERSON>", 3)
    assert {key: redacted[key] for key in ("event", "count", "score", "ok", "none")} == {
        "event": "feedback", "count": 2, "score": 0.5, "ok": True, "none": None}
    assert payload["items"][0]["text"].startswith("mail anna@")  # the input is not changed


def test_check_kinds_orders_and_deduplicates():
    assert check_kinds(["person", "email", "person", "url"]) == ("email", "url", "person")
    assert check_kinds(KINDS) == KINDS


def test_check_kinds_names_the_unknown_kinds_and_the_known_ones():
    with pytest.raises(ValueError) as error:
        check_kinds(["email", "ssn", "passport"], where="webhook")
    message = str(error.value)
    assert "'ssn'" in message and "'passport'" in message and message.startswith("webhook")
    assert all(kind in message for kind in KINDS)
    with pytest.raises(ValueError, match="'bogus'"):
        Redactor(kinds=["bogus"])


def test_only_the_asked_kinds_are_redacted():
    text = "mail anna@example.com or call +44 20 7946 0958, Dear Anna"
    assert Redactor(kinds=("email",)).redact(text) == "mail <EMAIL> or call +44 20 7946 0958, Dear Anna"
    assert Redactor(kinds=("phone", "person")).redact(text) == "mail anna@example.com or call <PHONE>, Dear <PERSON>"


def test_url_alone_does_not_take_an_email_domain():
    assert Redactor(kinds=("url",)).redact("mail anna.de@example.com") == "mail anna.de@example.com"


def test_a_missing_library_names_the_redact_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "presidio_analyzer", None)
    with pytest.raises(MissingExtraError, match=r"earshot\[redact\]"):
        Redactor(kinds=("email",))
    assert Redactor(kinds=("person",)).redact("Dear Anna") == "Dear <PERSON>"  # needs no library


def test_building_and_finding_make_no_network_call(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network use: {args}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    redactor = Redactor(kinds=("email", "url"))
    assert redactor.redact("mail anna@example.org, see shop.example.co.uk") == "mail <EMAIL>, see <URL>"
