import io

from catface_keras.progress import ProgressLog, progress, track


def test_progress_logs_every_five_percent_when_not_a_terminal():
    stream = io.StringIO()
    with progress(200, "embedding", stream=stream) as bar:
        for _ in range(200):
            bar.update(1)
    lines = stream.getvalue().splitlines()
    assert isinstance(bar, ProgressLog)
    # 5 %, 10 %, ..., 95 % while running, then 100 % at the end.
    assert len(lines) == 20
    assert lines[0].startswith("embedding: 5% (10/200 images")
    assert lines[-1].startswith("embedding: 100% (200/200 images")


def test_track_counts_big_steps_once_and_is_silent_for_nothing():
    stream = io.StringIO()
    with progress(10, "degrading", stream=stream) as bar:
        bar.update(7)  # 70 % at once: one line, not fourteen
        bar.update(3)
    assert stream.getvalue().count("\n") == 2
    stream = io.StringIO()
    assert list(track(iter("abc"), 3, "decoding", stream=stream)) == ["a", "b", "c"]
    assert "decoding: 100% (3/3 images" in stream.getvalue()
    silent = io.StringIO()
    with progress(0, "nothing", stream=silent):
        pass
    assert silent.getvalue() == ""
