"""AuthenticityQuiz: answers saved atomically after every answer, resume, summary."""

from __future__ import annotations

import pandas as pd
import pytest

from cytoviz.authenticity import build_quiz, load_answers
from cytoviz.data import SynthConfig, synthesize
from cytoviz.widgets import AuthenticityQuiz


@pytest.fixture(scope="module")
def quiz():
    real = synthesize(1, config=SynthConfig(image_size=16, seed=1))
    gen = synthesize(1, config=SynthConfig(image_size=16, seed=2))
    return build_quiz(real, gen, n_each=5, seed=0)


def test_saves_after_every_answer_and_resumes(quiz, tmp_path) -> None:
    path = tmp_path / "answers.csv"
    w = AuthenticityQuiz(quiz, "P1", answers_path=path)
    assert w.progress == "0 / 10" and w.position == 0 and not path.exists()
    w.answer(True, quiz.class_names[0])
    assert len(pd.read_csv(path)) == 1
    w.answer(False)
    w.answer(True, quiz.key["true_class"][2])
    saved = load_answers(path)
    assert saved["item"].tolist() == [0, 1, 2]
    assert saved["called_synthetic"].tolist() == [True, False, True]
    assert saved["answer_class"].tolist() == [quiz.class_names[0], "", quiz.key["true_class"][2]]
    assert w.progress == "3 / 10"
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind
    # a new session (e.g. after a kernel restart) resumes at the first unanswered image
    again = AuthenticityQuiz(quiz, "P1", answers_path=path)
    assert again.progress == "3 / 10" and again.position == 3
    # another participant in the same file starts from the beginning; P1's answers are kept
    other = AuthenticityQuiz(quiz, "P2", answers_path=path)
    assert other.position == 0
    other.answer(False)
    assert load_answers(path).groupby("participant").size().to_dict() == {"P1": 3, "P2": 1}


def test_skip_comes_back_and_summary_at_end(quiz, tmp_path) -> None:
    w = AuthenticityQuiz(quiz, "P1", answers_path=tmp_path / "a.csv")
    w.next()  # skip item 0
    assert w.position == 1
    truth = quiz.key["is_synthetic"].tolist()
    while not w.done:
        w.answer(truth[w.position], quiz.key["true_class"][w.position])
    assert w.progress == "10 / 10"
    s = w.summary().iloc[0]
    assert s["accuracy"] == 1.0 and s["n"] == 10 and s["class_agreement"] == 1.0
    with pytest.raises(RuntimeError, match="finished"):
        w.answer(True)


def test_ui_buttons_drive_the_same_methods(quiz, tmp_path) -> None:
    w = AuthenticityQuiz(quiz, "P3", answers_path=tmp_path / "b.csv")
    box = w.show()
    ui = w._ui
    assert ui is not None and box is ui["box"]
    assert ui["image"].value == quiz.png(0)
    assert "0 / 10" in ui["progress"].value
    ui["class"].value = quiz.class_names[1]
    real, synthetic, _skip = ui["buttons"]
    synthetic.click()
    assert ui["image"].value == quiz.png(1)
    assert "1 / 10" in ui["progress"].value
    real.click()
    saved = load_answers(tmp_path / "b.csv")
    assert saved["called_synthetic"].tolist() == [True, False]
    assert saved["answer_class"].tolist() == [quiz.class_names[1], ""]


def test_errors(quiz, tmp_path) -> None:
    w = AuthenticityQuiz(quiz, "P1", answers_path=tmp_path / "c.csv")
    with pytest.raises(ValueError, match="unknown class 'neutrofil'"):
        w.answer(True, "neutrofil")
    with pytest.raises(ValueError, match="not answered"):
        w.summary()
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"participant": ["P1"], "item": [99], "called_synthetic": [True],
                  "answer_class": [""]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="another answers file"):
        AuthenticityQuiz(quiz, "P1", answers_path=bad)
    with pytest.raises(ValueError, match="participant"):
        AuthenticityQuiz(quiz, " ", answers_path=tmp_path / "d.csv")
