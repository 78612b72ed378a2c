"""`kurdish_tts.doctor.report`: statuses, exit codes, the terminal table and the JSON report."""

import json

import pytest

from kurdish_tts.doctor import Check, DoctorReport, Status


def _report(*statuses):
    report = DoctorReport(context={"data": "demo"})
    for index, status in enumerate(statuses):
        report.add(Check("recipe", f"check {index}", status, f"evidence {index}", "fix it" if status != "OK" else ""))
    return report


@pytest.mark.parametrize(
    "statuses, overall, code",
    [
        ((Status.OK, Status.OK), Status.OK, 0),
        ((Status.OK, Status.WARN), Status.WARN, 0),
        ((Status.WARN, Status.FAIL, Status.OK), Status.FAIL, 1),
        ((Status.SKIP, Status.OK), Status.OK, 0),
        ((Status.SKIP,), Status.OK, 0),
    ],
)
def test_report_status_and_exit_code(statuses, overall, code):
    report = _report(*statuses)
    assert report.status == overall
    assert report.exit_code == code


def test_report_orders_checks_by_section():
    report = DoctorReport()
    report.add(Check("throughput", "speed", Status.OK, ""))
    report.add(Check("environment", "GPU", Status.OK, ""))
    report.add([Check("consistency", "hop length", Status.OK, ""), Check("environment", "TF32", Status.OK, "")])
    assert [check.title for check in report.checks] == [
        "environment: GPU",
        "environment: TF32",
        "consistency: hop length",
        "throughput: speed",
    ]


def test_table_shows_status_evidence_and_fix():
    report = _report(Status.OK, Status.FAIL)
    report.checks[1].evidence = "cache 22050 Hz, model 16000 Hz " * 8  # wraps
    table = report.to_table(width=100)
    lines = table.splitlines()
    assert lines[0].split() == ["STATUS", "CHECK", "EVIDENCE", "/", "FIX"]
    assert any(line.startswith("FAIL    recipe: check 1") for line in lines)
    assert "fix: fix it" in table
    assert max(len(line) for line in lines) <= 100
    assert lines[-1] == "overall: FAIL (1 OK, 1 FAIL)"


def test_json_report_is_strict_json_with_measurements(tmp_dir):
    report = _report(Status.WARN)
    report.checks[0].details = {"ratio": float("nan"), "sizes": (1, 2)}
    report.measurements = {"samples_per_second": 12.5, "batch_suggestion": {"max_batch_size": 64}}
    path = tmp_dir / "sub" / "doctor_report.json"
    report.save(path)
    text = path.read_text()
    assert "NaN" not in text  # strict JSON: other tools must read it
    data = json.loads(text)
    assert data["status"] == "WARN" and data["exit_code"] == 0
    assert data["counts"] == {"OK": 0, "WARN": 1, "FAIL": 0, "SKIP": 0}
    assert data["measurements"]["batch_suggestion"]["max_batch_size"] == 64
    check = data["checks"][0]
    assert check["status"] == "WARN" and check["fix"] == "fix it"
    assert check["details"] == {"ratio": "nan", "sizes": [1, 2]}
    assert data["context"] == {"data": "demo"}
    assert not list(path.parent.glob(".*"))  # no temporary file left behind
