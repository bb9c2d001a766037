"""Campaign safeguards: countries, spend caps, an opt-out footer, smart encoding, a suppression list."""

from __future__ import annotations

import json

import pytest
from requests_mock import ANY

from airflow_provider_commpeak._input.safeguards import SMART_REPLACEMENTS, Safeguards, smart_encode
from airflow_provider_commpeak._input.segments import count_segments
from airflow_provider_commpeak.exceptions import CommPeakValidationError
from airflow_provider_commpeak.hooks.commpeak import CommPeakHook
from airflow_provider_commpeak.notifications.commpeak import CommPeakSmsNotifier
from airflow_provider_commpeak.operators.commpeak import SendSmsOperator
from helpers import SEND_URL, accepted_answer, message
from helpers.fakes import make_context

IL, GB, US, CA = "972524265292", "447400123456", "12025550123", "16045551234"


@pytest.fixture
def nothing_sent(commpeak_conn, requests_mock):
    requests_mock.register_uri(ANY, ANY, status_code=599)
    yield requests_mock
    assert requests_mock.call_count == 0, "a request was sent despite a broken safeguard"


@pytest.fixture
def api(commpeak_conn, delays, requests_mock):
    requests_mock.post(SEND_URL, json=accepted_answer)
    return requests_mock


def sent(requests_mock) -> list[dict]:
    return [m for r in requests_mock.request_history for m in r.json()["messages"]]


def stage_problems(messages, **safeguards) -> list[str]:
    with pytest.raises(CommPeakValidationError) as info:
        CommPeakHook().send_messages(messages, id_namespace="af-0", safeguards=Safeguards.build(**safeguards))
    return info.value.problems


# -- countries ------------------------------------------------------------------------------------


def test_only_allowed_countries_and_every_other_is_counted_per_country(nothing_sent):
    messages = [message(0, phone=IL), message(1, phone=GB), message(2, phone=GB), message(3, phone=US)]
    problems = stage_problems(messages, allowed_countries=["IL", "+1"])
    # +44 is shared with GG, IM and JE: the region is named
    assert problems == ["2 message(s) to +44 (GB), not in allowed_countries (e.g. message 1, message 2)"]


def test_a_region_inside_a_shared_calling_code_is_told_apart(nothing_sent):
    problems = stage_problems([message(0, phone=US), message(1, phone=CA)], allowed_countries=["US"])
    assert problems == ["1 message(s) to +1 (CA), not in allowed_countries (e.g. message 1)"]


def test_blocked_countries_win(nothing_sent):
    problems = stage_problems([message(0, phone=IL), message(1, phone=GB)], blocked_countries=["GB"])
    assert problems == ["1 message(s) to +44 (GB), in blocked_countries (e.g. message 1)"]


def test_allowed_numbers_go_out(api):
    CommPeakHook().send_messages(
        [message(0, phone=IL), message(1, phone=US)], safeguards=Safeguards.build(allowed_countries=["IL", "US"])
    )
    assert [m["recipient_phone"] for m in sent(api)] == [IL, US]


# -- spend ----------------------------------------------------------------------------------------


def test_max_total_segments_refuses_the_campaign_before_anything_is_sent(nothing_sent):
    messages = [message(i, message_content=f"{i}" * 200) for i in range(3)]  # 2 segments each
    assert stage_problems(messages, max_total_segments=5) == [
        "the campaign takes 6 SMS segments, more than max_total_segments=5"
    ]


def test_prices_give_a_cost_per_country_and_max_cost_refuses_above_it(nothing_sent):
    messages = [message(0, phone=IL), message(1, phone=GB, message_content="y" * 200)]
    stats = CommPeakHook().dry_run(messages, safeguards=Safeguards.build(prices={"IL": 0.01, "default": 0.05}))
    assert stats.cost_by_code == {"972": 0.01, "44": 0.1}
    assert stats.estimated_cost == pytest.approx(0.11)
    assert "estimated cost 0.11 (+44: 0.10, +972: 0.01)" in stats.describe()
    problems = stage_problems(messages, prices={"IL": 0.01, "default": 0.05}, max_cost=0.1)
    assert problems == ["the campaign's estimated cost 0.11 is above max_cost=0.10"]
    assert stage_problems(messages, prices={"IL": 0.01}, max_cost=1) == [
        "max_cost: no price for +44 (add them to prices, or a 'default')"
    ]


# -- footer and smart encoding ----------------------------------------------------------------------


def test_the_opt_out_footer_is_sent_and_counted(api):
    text = "x" * 150  # one segment alone; two with the footer
    footer = "Reply STOP to opt out"
    stats = CommPeakHook().dry_run([message(0, message_content=text)], safeguards=Safeguards.build(opt_out_text=footer))
    assert stats.segments == 2
    CommPeakHook().send_messages(
        [message(0, message_content="Sale!")], safeguards=Safeguards.build(opt_out_text="Reply STOP to opt out")
    )
    assert sent(api)[0]["message_content"] == "Sale!\nReply STOP to opt out"


def test_max_segments_counts_the_footer(nothing_sent):
    with pytest.raises(CommPeakValidationError, match=r"more than max_segments=1 \(opt_out_text included\)"):
        CommPeakHook().send_messages(
            [message(0, message_content="x" * 150)],
            id_namespace="af-0",
            max_segments=1,
            safeguards=Safeguards.build(opt_out_text="Reply STOP to opt out"),
        )


def test_smart_encoding_makes_a_text_gsm7_and_the_dry_run_shows_before_and_after(api):
    text = "It\u2019s \u201cready\u201d \u2014 see you\u2026"
    assert count_segments(text).encoding == "UCS-2"
    stats = CommPeakHook().dry_run(
        [message(0, message_content=text * 4)], safeguards=Safeguards.build(smart_encoding=True)
    )
    assert (stats.segments_before_smart_encoding, stats.segments) == (2, 1)
    assert "smart encoding: 2 segment(s) before, 1 after" in stats.describe()
    CommPeakHook().send_messages([message(0, message_content=text)], safeguards=Safeguards.build(smart_encoding=True))
    assert sent(api)[0]["message_content"] == 'It\'s "ready" - see you...'


def test_smart_encoding_keeps_a_text_that_needs_ucs2_anyway():
    assert smart_encode("\u05e9\u05dc\u05d5\u05dd \u2014 hi") == "\u05e9\u05dc\u05d5\u05dd \u2014 hi"
    for char, replacement in SMART_REPLACEMENTS.items():
        assert count_segments(smart_encode(f"a{char}b")).encoding == "GSM-7", hex(ord(char))
        assert smart_encode(f"a{char}b") == f"a{replacement}b"


def test_alerts_use_smart_encoding_by_default(api):
    notifier = CommPeakSmsNotifier(recipients=[IL], sender="ALERTS", message_content="Load didn\u2019t finish")
    notifier.notify({"dag": None, "dag_run": None, "ti": None, "task_instance": None})
    assert sent(api)[0]["message_content"] == "Load didn't finish"


# -- suppression ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("optouts.txt", "# opted out\n+972 52-426-5292\n\n0545330008\n"),
        ("optouts.csv", "recipient_phone,when\n972524265292,2026-11-01\n054-533-0008,2026-11-02\n"),
        ("optouts.csv", "972524265292\n+972545330008\n"),
        ("optouts.jsonl", json.dumps({"recipient_phone": "972524265292"}) + "\n" + json.dumps("0545330008") + "\n"),
    ],
)
def test_a_listed_number_is_never_sent_to_and_reported_suppressed(api, tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    messages = [message(0, phone=IL), message(1, phone="972545330008"), message(2, phone=GB)]
    outcome = CommPeakHook().send_messages(
        messages, default_region="IL", safeguards=Safeguards.build(suppression_path=str(path))
    )
    assert [m["recipient_phone"] for m in sent(api)] == [GB]
    assert {k: v["error"] for k, v in outcome.results.items()} == {"m0": "SUPPRESSED", "m1": "SUPPRESSED", "m2": None}
    assert (outcome.accepted, outcome.failed) == (1, 0)  # SUPPRESSED is not a failure


def test_an_unreadable_suppression_entry_refuses_the_campaign(nothing_sent, tmp_path):
    path = tmp_path / "optouts.txt"
    path.write_text("972524265292\n052-426-5292\nnot a number\n")
    problems = stage_problems([message(0, phone=GB)], suppression_path=str(path))
    assert problems == [
        f"the suppression list {str(path)!r} has 2 entr(ies) that are not phone numbers (line(s) 2, 3); "
        "a national number needs default_region"
    ]


def test_the_operator_reports_suppressed_messages_in_its_summary(api, tmp_path):
    path = tmp_path / "optouts.txt"
    path.write_text("972524265292\n")
    result = SendSmsOperator(
        task_id="send", recipients=[IL, GB], message_content="x", sender="S", suppression_path=str(path)
    ).execute(make_context())
    assert [r["error"] for r in result["results"].values()] == ["SUPPRESSED", None]
    assert (result["accepted"], result["failed"]) == (1, 0)


# -- bad values: all at once, at DAG parse ------------------------------------------------------------


def test_bad_safeguards_are_refused_at_dag_parse_all_at_once():
    with pytest.raises(CommPeakValidationError) as info:
        SendSmsOperator(
            task_id="send",
            recipients=[IL],
            message_content="x",
            allowed_countries=["ZZ", "999"],
            max_total_segments=-1,
            max_cost=5,
            prices={"US": 0.01, "CA": 0.02},
            opt_out_text="\u05e9" * 80,
            max_segments=1,
            suppression_path="optouts.xlsx",
        )
    assert info.value.problems == [
        "allowed_countries: 'ZZ' is neither an ISO region (e.g. 'GB') nor a calling code (e.g. '44')",
        "allowed_countries: '999' is neither an ISO region (e.g. 'GB') nor a calling code (e.g. '44')",
        "max_total_segments must be at least 1, got -1",
        "prices: 'US' and 'CA' share calling code +1; give one price for it",
        "suppression_path: name it .txt, .csv or .jsonl",
        "opt_out_text alone takes 2 SMS segment(s), more than max_segments=1",
    ]


def test_a_templated_footer_is_checked_once_rendered(api):
    op = SendSmsOperator(
        task_id="send", recipients=[IL], message_content="x", sender="S", opt_out_text="{{ params.stop }}"
    )
    op.opt_out_text = "STOP to 4040"  # what rendering would give
    op.execute(make_context())
    assert sent(api)[0]["message_content"] == "x\nSTOP to 4040"


def test_a_priced_send_logs_its_estimated_cost(api, logs):
    messages = [message(0, phone=IL), message(1, phone=GB, message_content="y" * 200)]
    CommPeakHook().send_messages(messages, safeguards=Safeguards.build(prices={"IL": 0.01, "default": 0.05}))
    assert "Estimated cost: 0.11 (+44: 0.10, +972: 0.01)" in logs.text
