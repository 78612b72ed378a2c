import json
import math

import datasets
import numpy as np
import pytest
from matplotlib.image import imread

from kurdish_tts.data.validate import ValidationConfig, plot_duration_histogram, validate_statistics

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "speaker": datasets.Value("string"),
        "raw_text": datasets.Value("string"),
        "text": datasets.Value("string"),
        "drop_reason": datasets.Value("string"),
        "error": datasets.Value("string"),
        "duration": datasets.Value("float32"),
        "orig_sample_rate": datasets.Value("int32"),
        "orig_channels": datasets.Value("int32"),
        "peak": datasets.Value("float32"),
        "clipped_fraction": datasets.Value("float32"),
        "rms_db": datasets.Value("float32"),
        "audio_hash": datasets.Value("string"),
        "unknown_chars": datasets.Value("string"),
        "input_length": datasets.Value("int32"),
    }
)


def _row(id, speaker, text, duration, drop_reason="", **overrides):
    row = {
        "id": id,
        "speaker": speaker,
        "raw_text": text,
        "text": text,
        "drop_reason": drop_reason,
        "error": "",
        "duration": duration,
        "orig_sample_rate": 16000,
        "orig_channels": 1,
        "peak": 0.5,
        "clipped_fraction": 0.0,
        "rms_db": -20.0,
        # Unique per clip unless a test plants a duplicate.
        "audio_hash": f"hash-{id}",
        "unknown_chars": "{}",
        "input_length": 2 * len(text) + 1 if text and not drop_reason else 0,
    }
    row.update(overrides)
    return row


def _dataset(rows):
    return datasets.Dataset.from_dict({name: [row[name] for row in rows] for name in FEATURES}, features=FEATURES)


# Kept clips speak at 9-12 characters per second (spaces not counted), except c10 (50 chars/s).
KEPT = [
    _row("c01", "a", "roj baş", 0.6),
    _row("c02", "a", "spas ji bo te", 1.0),
    _row("c03", "b", "ez çûm bazarê", 1.0),
    _row("c04", "b", "ez çûm bazarê", 1.1),
    _row("c05", "a", "şev baş", 0.5, rms_db=-60.0),
    _row("c06", "b", "êvara te xweş", 1.0, clipped_fraction=0.01, peak=1.0),
    _row(
        "c07",
        "c",
        "hûn çawa ne",
        1.0,
        raw_text="hûn çawä ne",
        orig_sample_rate=44100,
        orig_channels=2,
        unknown_chars='{"ä": 1}',
    ),
    _row("c08", "a", "ez ji kurdistanê me", 1.6, audio_hash="same"),
    _row("c09", "c", "mala me li vir e", 1.2, audio_hash="same"),
    _row("c10", "b", "ev pirtûkeke pir dirêj û xweş e", 0.5),
]
DROPPED = [
    _row(
        "d01",
        "a",
        "bê deng",
        0.0,
        "undecodable_audio",
        error="Format not recognised.",
        orig_sample_rate=0,
        orig_channels=0,
        peak=0.0,
        rms_db=-120.0,
        audio_hash="",
    ),
    _row("d02", "b", "gotineke dirêj", 25.0, "too_long", clipped_fraction=0.5),
    _row("d03", "c", "gotineke din", 30.0, "too_long"),
    _row("d04", "a", "na", 0.2, "too_short"),
    _row(
        "d05",
        "c",
        "",
        1.0,
        "unknown_characters",
        raw_text="ūūū ä",
        orig_sample_rate=22050,
        unknown_chars='{"ū": 3, "ä": 1}',
    ),
    _row("d06", "b", "", 1.0, "empty_text", raw_text="..."),
    _row("d07", "a", "bêdengî", 1.0, "silent_audio", rms_db=-120.0, peak=0.0),
]


@pytest.fixture
def stats():
    return _dataset(KEPT + DROPPED)


class TestValidateStatistics:
    def test_validate_statistics_totals(self, stats):
        report = validate_statistics(stats)

        assert report.is_usable
        assert report.problems == []
        assert (report.total_clips, report.kept_clips, report.dropped_clips) == (17, 10, 7)
        assert report.kept_hours == pytest.approx(9.5 / 3600)
        assert report.dropped_hours == pytest.approx(58.2 / 3600)

    def test_validate_statistics_drop_reasons(self, stats):
        report = validate_statistics(stats)

        reasons = [(s.reason, s.clips) for s in report.drop_reasons]
        assert reasons == [
            ("too_long", 2),
            ("empty_text", 1),
            ("silent_audio", 1),
            ("too_short", 1),
            ("undecodable_audio", 1),
            ("unknown_characters", 1),
        ]
        too_long = report.drop_reasons[0]
        assert too_long.hours == pytest.approx(55.0 / 3600)
        assert [e["id"] for e in too_long.examples] == ["d02", "d03"]
        assert report.drop_reasons[4].examples == [{"id": "d01", "error": "Format not recognised."}]

    def test_validate_statistics_durations_and_histogram(self, stats):
        report = validate_statistics(stats)

        durations = report.durations
        assert durations.count == 10
        assert durations.min == pytest.approx(0.5)
        assert durations.max == pytest.approx(1.6)
        assert durations.mean == pytest.approx(0.95)
        assert durations.median == pytest.approx(1.0)
        assert set(durations.percentiles) == {"p1", "p5", "p25", "p75", "p95", "p99"}
        assert report.input_lengths.max == 2 * len("ev pirtûkeke pir dirêj û xweş e") + 1

        histogram = report.duration_histogram
        assert len(histogram.bin_edges) == 51
        # The undecodable clip has no duration and stays out of the plot.
        assert (sum(histogram.kept), sum(histogram.dropped)) == (10, 6)
        assert histogram.bin_edges[0] == pytest.approx(0.2)
        assert histogram.bin_edges[-1] == pytest.approx(30.0)

    def test_validate_statistics_chars_per_second_outlier(self, stats):
        cps = validate_statistics(stats).chars_per_second

        assert cps.median == pytest.approx(10.0, rel=1e-5)
        assert cps.mad == pytest.approx(0.5, rel=1e-4)
        assert cps.outliers == 1
        (example,) = cps.examples
        assert example["id"] == "c10"
        assert example["text"] == "ev pirtûkeke pir dirêj û xweş e"
        assert example["duration"] == pytest.approx(0.5)
        assert example["cps"] == pytest.approx(50.0)
        assert example["z_score"] == pytest.approx(0.6745 * 40 / 0.5, rel=1e-3)

    def test_validate_statistics_chars_per_second_mad_zero(self):
        # Six clips at exactly 10 chars/s make MAD 0; the mean-absolute-deviation fallback must still flag the odd one.
        rows = [_row(f"s{i}", "a", "abcdefghij", 1.0) for i in range(6)] + [_row("odd", "a", "abcdefghij", 0.5)]
        cps = validate_statistics(_dataset(rows)).chars_per_second

        assert cps.mad == 0.0
        assert cps.outliers == 1
        assert cps.examples[0]["id"] == "odd"
        assert math.isfinite(cps.examples[0]["z_score"])

    def test_validate_statistics_identical_rates_have_no_outliers(self):
        rows = [_row(f"s{i}", "a", "abcdefghi" + str(i), 1.0) for i in range(4)]
        report = validate_statistics(_dataset(rows))

        assert report.chars_per_second.outliers == 0
        assert report.warnings == []

    def test_validate_statistics_unknown_characters(self, stats):
        report = validate_statistics(stats)

        assert report.unknown_character_clips == 2
        u_macron, a_umlaut = report.unknown_characters
        assert (u_macron.char, u_macron.code_point, u_macron.count, u_macron.clips) == ("ū", "U+016B", 3, 1)
        assert u_macron.name == "LATIN SMALL LETTER U WITH MACRON"
        assert u_macron.examples == ["d05"]
        assert (a_umlaut.char, a_umlaut.code_point, a_umlaut.count, a_umlaut.clips) == ("ä", "U+00E4", 2, 2)
        assert a_umlaut.name == "LATIN SMALL LETTER A WITH DIAERESIS"
        assert a_umlaut.examples == ["c07", "d05"]

    def test_validate_statistics_audio_levels(self, stats):
        report = validate_statistics(stats)

        # Dropped clips (d02 clipped, d07 silent) are not counted: they never reach training.
        assert report.clipped.clips == 1
        assert report.clipped.examples == [{"id": "c06", "value": pytest.approx(0.01)}]
        assert report.near_silent.clips == 1
        assert report.near_silent.examples == [{"id": "c05", "value": -60.0}]

    def test_validate_statistics_sample_rate_and_channel_mix(self, stats):
        report = validate_statistics(stats)

        assert report.sample_rates == {16000: 14, 22050: 1, 44100: 1}
        assert report.channels == {1: 15, 2: 1}

    def test_validate_statistics_duplicates(self, stats):
        report = validate_statistics(stats)

        texts = report.duplicate_texts
        assert (texts.groups, texts.clips) == (1, 2)
        assert texts.examples[0].key == "ez çûm bazarê"
        assert texts.examples[0].ids == ["c03", "c04"]
        assert texts.examples[0].speakers == 1

        audio = report.duplicate_audio
        assert (audio.groups, audio.clips) == (1, 2)
        assert audio.examples[0].key == "same"
        assert audio.examples[0].ids == ["c08", "c09"]
        assert audio.examples[0].speakers == 2

    def test_validate_statistics_speakers(self, stats):
        report = validate_statistics(stats)

        assert report.num_speakers == 3
        summary = [(s.speaker, s.clips, s.dropped_clips) for s in report.speakers]
        assert summary == [("a", 4, 3), ("b", 4, 2), ("c", 2, 2)]
        assert [s.hours * 3600 for s in report.speakers] == pytest.approx([3.7, 3.6, 2.2])

    def test_validate_statistics_warnings(self, stats):
        warnings = validate_statistics(stats).warnings

        assert len(warnings) == 6
        joined = "\n".join(warnings)
        assert "2 of 17 clips contain characters the tokenizer cannot speak" in joined
        assert "1 kept clip has an unusual speaking rate" in joined and "c10" in joined
        assert "1 text occurs in more than one kept clip (2 clips)" in joined
        assert "1 recording occurs more than once" in joined
        assert "1 kept clip is near-silent" in joined and "c05" in joined
        assert "1 kept clip is clipped" in joined and "c06" in joined
        # 7 of 17 dropped is below the default max_dropped_share of 0.5.
        assert "were dropped" not in joined

    def test_validate_statistics_high_drop_share_warns(self):
        rows = [_row("k0", "a", "roj baş", 1.0), _row("k1", "a", "şev baş", 1.0)]
        rows += [_row(f"d{i}", "a", "roj baş", 40.0, "too_long") for i in range(3)]
        report = validate_statistics(_dataset(rows))

        assert report.is_usable
        assert report.warnings == [
            "3 of 5 clips (60%) were dropped (3 too_long): check your source and the preprocessing filters."
        ]

    def test_validate_statistics_all_dropped_is_unusable(self):
        rows = [_row(f"l{i:02d}", "a", "roj baş", 40.0, "too_long") for i in range(9)]
        rows += [_row(f"e{i}", "a", "", 1.0, "empty_text") for i in range(3)]
        report = validate_statistics(_dataset(rows))

        assert not report.is_usable
        (problem,) = report.problems
        assert problem.startswith("All 12 clips were dropped: 9 too_long, 3 empty_text")
        assert "raise max_duration" in problem
        assert report.kept_clips == 0 and report.num_speakers == 0
        assert report.durations.count == 0 and report.durations.median is None
        assert report.chars_per_second.median is None
        # The FAIL message already holds the breakdown.
        assert not any("were dropped" in warning for warning in report.warnings)

    def test_validate_statistics_undecodable_problem_quotes_the_error(self):
        rows = [_row("x", "a", "roj baş", 0.0, "undecodable_audio", error="Format not recognised.", audio_hash="")]
        (problem,) = validate_statistics(_dataset(rows)).problems

        assert "1 undecodable_audio" in problem and "Format not recognised." in problem

    def test_validate_statistics_empty_dataset(self, tmp_dir):
        report = validate_statistics(_dataset([]))

        assert not report.is_usable
        assert "empty" in report.problems[0]
        assert report.total_clips == 0 and report.speakers == [] and report.sample_rates == {}
        paths = report.save(tmp_dir)
        assert json.loads(paths["json"].read_text(encoding="utf-8"))["is_usable"] is False
        assert paths["histogram"].read_bytes().startswith(PNG_SIGNATURE)

    @pytest.mark.parametrize(
        "config, expected",
        [
            (ValidationConfig(min_kept_clips=11), "Only 10 of 17 clips are left after filtering"),
            (ValidationConfig(min_kept_hours=1.0), "Only 9.5 s of audio are left after filtering"),
        ],
    )
    def test_validate_statistics_minimum_thresholds(self, stats, config, expected):
        report = validate_statistics(stats, config)

        assert not report.is_usable
        (problem,) = report.problems
        assert problem.startswith(expected)
        assert "too_long" in problem

    def test_validate_statistics_max_examples(self, stats):
        report = validate_statistics(stats, ValidationConfig(max_examples=1))

        assert [e["id"] for e in report.drop_reasons[0].examples] == ["d02"]
        assert report.unknown_characters[1].examples == ["c07"]
        assert report.unknown_characters[1].clips == 2

    def test_validate_statistics_missing_column_raises(self, stats):
        with pytest.raises(ValueError, match="rms_db"):
            validate_statistics(stats.remove_columns("rms_db"))

    def test_validation_config_rejects_bad_share(self):
        with pytest.raises(ValueError, match="max_dropped_share"):
            ValidationConfig(max_dropped_share=1.5)


class TestValidationReportOutput:
    def test_to_dict_is_strict_json(self, stats):
        report = validate_statistics(stats)

        def reject(constant):
            raise AssertionError(f"non-finite number {constant} in the JSON report")

        loaded = json.loads(json.dumps(report.to_dict(), allow_nan=False), parse_constant=reject)
        assert loaded["is_usable"] is True
        assert loaded["num_speakers"] == 3
        assert loaded["sample_rates"] == {"16000": 14, "22050": 1, "44100": 1}
        assert loaded["duplicate_audio"]["examples"][0]["ids"] == ["c08", "c09"]
        assert loaded["config"]["cps_z_threshold"] == 3.5

    def test_to_dict_turns_missing_statistics_into_null(self):
        rows = [_row("l0", "a", "roj baş", 40.0, "too_long")]
        loaded = json.loads(json.dumps(validate_statistics(_dataset(rows)).to_dict(), allow_nan=False))

        assert loaded["durations"]["median"] is None
        assert loaded["chars_per_second"]["mad"] is None

    def test_save_writes_report_files(self, stats, tmp_dir):
        report = validate_statistics(stats)
        paths = report.save(tmp_dir / "validation")

        assert set(paths) == {"json", "markdown", "histogram"}
        assert json.loads(paths["json"].read_text(encoding="utf-8")) == report.to_dict()
        assert paths["markdown"].read_text(encoding="utf-8") == report.to_markdown()
        png = paths["histogram"].read_bytes()
        assert png.startswith(PNG_SIGNATURE)
        assert len(png) > 5_000
        image = imread(paths["histogram"])
        assert image.shape[:2] == (450, 800)
        # Stacked bars in two colours, not a blank canvas.
        assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 10
        # Atomic writes leave no temporary files behind.
        assert sorted(p.name for p in (tmp_dir / "validation").iterdir()) == [
            "durations.png",
            "report.json",
            "report.md",
        ]

    def test_to_markdown_has_sections_and_numbers(self, stats):
        markdown = validate_statistics(stats).to_markdown()

        for heading in [
            "# Dataset validation report",
            "**Status: USABLE**",
            "## Warnings",
            "## Totals",
            "## Drop reasons",
            "## Durations of kept clips",
            "## Characters per second (kept clips)",
            "## Characters unknown to the tokenizer",
            "## Audio levels (kept clips)",
            "## Sample rates and channels (decodable clips)",
            "## Duplicates (kept clips)",
            "## Speakers",
        ]:
            assert heading in markdown
        assert "## Problems" not in markdown
        assert "| kept | 10 | 0.003 | 58.8% |" in markdown
        assert "| too_long | 2 | 0.015 | d02; d03 |" in markdown
        assert "| undecodable_audio | 1 | 0 | d01: Format not recognised. |" in markdown
        assert "| `ū` | U+016B | LATIN SMALL LETTER U WITH MACRON | 3 | 1 | d05 |" in markdown
        assert "| 44100 | 1 |" in markdown
        assert "| ez çûm bazarê | 2 | 1 | c03, c04 |" in markdown
        assert "3 speakers with kept clips." in markdown

    def test_to_markdown_lists_problems_and_top_speakers(self):
        rows = [_row(f"l{i}", f"spk{i}", "roj baş", 40.0, "too_long") for i in range(3)]
        markdown = validate_statistics(_dataset(rows), ValidationConfig(top_speakers=2)).to_markdown()

        assert "**Status: UNUSABLE**" in markdown
        assert "- FAIL: All 3 clips were dropped: 3 too_long" in markdown
        assert "… and 1 more in report.json." in markdown


class TestPlotDurationHistogram:
    def test_plot_duration_histogram_writes_png(self, tmp_dir):
        path = plot_duration_histogram([1.0, 2.0, 2.5], [15.0], tmp_dir / "plots" / "durations.png", bins=10)

        assert path.read_bytes().startswith(PNG_SIGNATURE)
        assert path.stat().st_size > 5_000

    def test_plot_duration_histogram_handles_no_durations(self, tmp_dir):
        path = plot_duration_histogram([], [], tmp_dir / "empty.png")

        assert path.read_bytes().startswith(PNG_SIGNATURE)
