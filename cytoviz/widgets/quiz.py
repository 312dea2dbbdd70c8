"""AuthenticityQuiz: the real-vs-synthetic test (METHOD.md section 7) in JupyterLab."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from cytoviz.authenticity import ANSWER_COLUMNS, Quiz, load_answers, save_answers, score_answers

if TYPE_CHECKING:
    import ipywidgets as widgets

__all__ = ["AuthenticityQuiz"]


class AuthenticityQuiz:
    """Show a :class:`~cytoviz.authenticity.Quiz` one image at a time and record the answers.

    The participant calls each image real or synthetic and, optionally, picks its class. Every
    answer is written to ``answers_path`` at once (the whole CSV is written to a temporary file
    and renamed over the old one), so nothing is lost or half-written if the kernel dies. Opening
    the quiz again with the same file and participant resumes at the first unanswered image.
    Answers of other participants in the same file are kept.

    Parameters
    ----------
    quiz
        The quiz (from :func:`~cytoviz.authenticity.build_quiz` or ``Quiz.load``).
    participant
        Participant id written with every answer.
    answers_path
        CSV of answers (:data:`~cytoviz.authenticity.ANSWER_COLUMNS`); created if absent.
    ask_class
        Show the class dropdown (the paper asked for the class too).
    image_width
        Display width of the image in pixels.

    Notes
    -----
    Callbacks are plain methods (:meth:`answer`, :meth:`next`, :meth:`summary`), so the quiz can
    be driven and tested without a browser; :meth:`show` returns the ipywidgets box.
    """

    def __init__(self, quiz: Quiz, participant: str = "P1", *,
                 answers_path: str | os.PathLike[str] = "quiz_answers.csv",
                 ask_class: bool = True, image_width: int = 256) -> None:
        if not str(participant).strip():
            raise ValueError("participant must be a non-empty id, e.g. 'P1'")
        self.quiz = quiz
        self.participant = str(participant)
        self.answers_path = Path(answers_path)
        self.ask_class = bool(ask_class)
        self.image_width = int(image_width)
        self.answers = load_answers(self.answers_path)
        out_of_range = sorted(set(self.answers["item"]) - set(range(len(quiz))))
        if out_of_range:
            raise ValueError(
                f"{self.answers_path} has answers for item(s) {out_of_range[:10]} that this quiz "
                f"of {len(quiz)} images does not have; use another answers file for this quiz"
            )
        self.position = self._first_unanswered()
        self._ui: dict[str, Any] | None = None

    # ---------------------------------------------------------------- state (plain methods)
    def _mine(self) -> pd.DataFrame:
        return self.answers[self.answers["participant"] == self.participant]

    def _answered(self) -> set[int]:
        return set(self._mine()["item"].astype(int))

    def _first_unanswered(self, start: int = 0) -> int:
        done = self._answered()
        n = len(self.quiz)
        for offset in range(n):
            item = (start + offset) % n
            if item not in done:
                return item
        return n

    @property
    def n_answered(self) -> int:
        """Number of images this participant has answered."""
        return len(self._answered())

    @property
    def done(self) -> bool:
        """Whether every image has an answer."""
        return self.n_answered >= len(self.quiz)

    @property
    def progress(self) -> str:
        """``"answered / total"``, e.g. ``"12 / 288"``."""
        return f"{self.n_answered} / {len(self.quiz)}"

    def answer(self, is_synthetic: bool, cls: str | None = None) -> None:
        """Record the answer for the current image, save the CSV, and move to the next image.

        Parameters
        ----------
        is_synthetic
            ``True`` if the participant calls the image synthetic (generated).
        cls
            The participant's class, one of the quiz's class names, or ``None``.
        """
        if self.done or self.position >= len(self.quiz):
            raise RuntimeError(f"the quiz is finished ({self.progress}); see summary()")
        if cls is not None and cls != "" and cls not in self.quiz.class_names:
            raise ValueError(f"unknown class {cls!r}; choose one of {list(self.quiz.class_names)}")
        row = pd.DataFrame([{
            "participant": self.participant, "item": int(self.position),
            "called_synthetic": bool(is_synthetic), "answer_class": cls or "",
        }])
        keep = ~((self.answers["participant"] == self.participant)
                 & (self.answers["item"] == self.position))
        parts = [self.answers[keep], row] if keep.any() else [row]
        new = pd.concat(parts, ignore_index=True)[list(ANSWER_COLUMNS)]
        save_answers(new, self.answers_path)  # atomic: temp file + rename, after every answer
        self.answers = new
        self.position = self._first_unanswered(self.position + 1)
        self._refresh()

    def next(self) -> None:
        """Skip to the next unanswered image (the skipped one comes back later)."""
        if not self.done:
            self.position = self._first_unanswered(self.position + 1)
        self._refresh()

    def summary(self) -> pd.DataFrame:
        """:func:`~cytoviz.authenticity.score_answers` of this participant's answers so far."""
        mine = self._mine()
        if mine.empty:
            raise ValueError(f"participant {self.participant!r} has not answered anything yet")
        return score_answers(mine, self.quiz).iloc[:1].reset_index(drop=True)

    # ---------------------------------------------------------------- the widget
    def show(self) -> widgets.VBox:
        """The ipywidgets box: image, Real / Synthetic buttons, class dropdown, progress."""
        import ipywidgets as widgets

        if self._ui is None:
            image = widgets.Image(format="png", width=self.image_width)
            real = widgets.Button(description="Real", button_style="success", icon="check")
            synthetic = widgets.Button(description="Synthetic", button_style="warning",
                                       icon="magic")
            skip = widgets.Button(description="Skip")
            cls = widgets.Dropdown(options=["", *self.quiz.class_names], value="",
                                   description="Class", layout=widgets.Layout(width="260px"))
            progress = widgets.HTML()
            result = widgets.Output()
            real.on_click(lambda _b: self.answer(False, cls.value or None))
            synthetic.on_click(lambda _b: self.answer(True, cls.value or None))
            skip.on_click(lambda _b: self.next())
            controls = [real, synthetic, skip]
            if self.ask_class:
                controls.insert(0, cls)
            box = widgets.VBox([progress, image, widgets.HBox(controls), result])
            self._ui = {"image": image, "class": cls, "progress": progress, "result": result,
                        "box": box, "buttons": (real, synthetic, skip)}
        self._refresh()
        return self._ui["box"]

    def _refresh(self) -> None:
        if self._ui is None:
            return
        ui = self._ui
        ui["progress"].value = f"<b>{self.participant}</b>: {self.progress}"
        ui["class"].value = ""
        if self.done:
            for b in ui["buttons"]:
                b.disabled = True
            ui["class"].disabled = True
            s = self.summary().iloc[0]
            ui["result"].clear_output()
            with ui["result"]:
                from IPython.display import display

                print(f"Finished. Accuracy {s.accuracy:.1%} "
                      f"(95 % CI {s.accuracy_low:.1%}-{s.accuracy_high:.1%}), "
                      f"sensitivity {s.sensitivity:.1%}, specificity {s.specificity:.1%}")
                display(self.summary())
        else:
            ui["image"].value = self.quiz.png(self.position)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.show()._repr_mimebundle_(**kwargs)
